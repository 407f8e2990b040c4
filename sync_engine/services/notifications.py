"""Provider push → sync request. Called by the webhook routes; must answer fast.

Graph notifications are authenticated by the ``clientState`` secret we gave the
subscription (only its hash is stored); Gmail pushes by the OIDC JWT the adapter
verifies. Each accepted notice bumps the mailbox's sync request counter (so a
pass already running does another round) and enqueues a sync job.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from db.models import ConnectionStatus, EmailConnection
from db.repositories import connections as repo
from sync_engine.crypto import constant_time_equal_hash
from sync_engine.domain import Provider, PushKind, PushNotice
from sync_engine.job_queue import Jobs
from sync_engine.providers.base import PushRejected
from sync_engine.services.collaborators import SessionFactory
from sync_engine.services.mailboxes import Mailboxes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotificationService:
    sessions: SessionFactory
    mailboxes: Mailboxes
    jobs: Jobs

    async def accept_push(self, provider: Provider, headers: Mapping[str, str], query: Mapping[str, str],
                          body: bytes) -> int:
        if not self.mailboxes.configured(provider):
            raise PushRejected("provider not configured")
        notices = await self.mailboxes.provider(provider).parse_push(headers, query, body)
        authentic = 0
        for notice in notices:
            ok, conn = await self._connection_for(provider, notice)
            authentic += ok
            if conn is not None:
                await self._act(conn, notice)
        if notices and not authentic:
            raise PushRejected("no notification was authentic")
        return authentic

    async def _connection_for(self, provider: Provider, notice: PushNotice) -> tuple[bool, EmailConnection | None]:
        """(authentic?, the current connection to act on). An authentic notice for a mailbox that
        is no longer connected is acknowledged and ignored, so the provider stops retrying."""
        async with self.sessions() as session:
            if notice.subscription_id is not None:
                conn = await repo.connection_by_watch_id(session, notice.subscription_id)
                if conn is None or not constant_time_equal_hash(notice.client_state or "", conn.client_state_hash):
                    log.warning("push for an unknown subscription or with a wrong clientState was refused")
                    return False, None
            elif notice.address is not None:
                # Gmail: the adapter verified the push's OIDC token before building the notice.
                conn = await repo.current_connection_by_address(session, provider.value, notice.address)
            else:
                return False, None
        if conn is None or conn.provider != provider.value or not conn.is_current:
            return True, None
        return True, conn

    async def _act(self, conn: EmailConnection, notice: PushNotice) -> None:
        if notice.kind in (PushKind.CHANGED, PushKind.MISSED):
            if conn.status == ConnectionStatus.REAUTH_REQUIRED:
                return
            async with self.sessions.begin() as session:
                await repo.bump_sync_request(session, conn.id)
            await self.jobs.sync_mailbox(conn.id)
        elif notice.kind is PushKind.REAUTHORIZATION_REQUIRED:
            await self.jobs.renew_watch(conn.id)
        elif notice.kind is PushKind.SUBSCRIPTION_REMOVED:
            await self.jobs.setup_connection(conn.id)
