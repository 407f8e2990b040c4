"""Provider push → sync request. Called by the webhook routes; must answer fast.

Graph notifications are authenticated by the ``clientState`` secret we gave the
subscription (only its hash is stored); Gmail pushes by the OIDC JWT the adapter
verifies. Each accepted notice bumps the mailbox's sync request counter (so a
pass already running does another round) and enqueues a sync job.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select

from db.models import ConnectionStatus, EmailConnection
from db.repositories import mailbox_sync as repo
from sync_engine.crypto import constant_time_equal_hash
from sync_engine.domain import Provider, PushKind, PushNotice
from sync_engine.providers.base import PushRejected
from sync_engine.runtime import Runtime

log = logging.getLogger(__name__)


async def accept_push(
    rt: Runtime, provider: Provider, headers: Mapping[str, str], query: Mapping[str, str], body: bytes
) -> int:
    if provider not in rt.providers:
        raise PushRejected("provider not configured")
    notices = await rt.provider(provider).parse_push(headers, query, body)
    authentic = 0
    for notice in notices:
        ok, conn = await _connection_for(rt, provider, notice)
        authentic += ok
        if conn is not None:
            await _act(rt, conn, notice)
    if notices and not authentic:
        raise PushRejected("no notification was authentic")
    return authentic


async def _connection_for(rt: Runtime, provider: Provider, notice: PushNotice) -> tuple[bool, EmailConnection | None]:
    """(authentic?, the current connection to act on). An authentic notice for a mailbox that
    is no longer connected is acknowledged and ignored, so the provider stops retrying."""
    async with rt.sessions() as session:
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


async def _act(rt: Runtime, conn: EmailConnection, notice: PushNotice) -> None:
    if notice.kind in (PushKind.CHANGED, PushKind.MISSED):
        if conn.status == ConnectionStatus.REAUTH_REQUIRED:
            return
        async with rt.sessions.begin() as session:
            await repo.bump_sync_request(session, conn.id)
        await rt.queue.enqueue("sync_mailbox", str(conn.id))
    elif notice.kind is PushKind.REAUTHORIZATION_REQUIRED:
        await rt.queue.enqueue("renew_watch", str(conn.id), job_id=f"renew:{conn.id}")
    elif notice.kind is PushKind.SUBSCRIPTION_REMOVED:
        await rt.queue.enqueue("setup_connection", str(conn.id), job_id=f"setup:{conn.id}")


async def live_connection_ids(rt: Runtime) -> list[str]:
    async with rt.sessions() as session:
        rows = await session.scalars(
            select(EmailConnection.id).where(
                EmailConnection.is_current.is_(True), EmailConnection.status.in_(ConnectionStatus.LIVE)
            )
        )
        return [str(r) for r in rows]
