"""Provider push registrations: create on connect, renew before expiry, re-create when removed.

Graph message subscriptions live at most 4,230 minutes; Gmail watches 7 days.
The renewal job runs hourly and renews anything expiring within a day.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from db.models import ConnectionStatus, EmailConnection
from db.repositories import connections as repo
from sync_engine.crypto import sha256_hex
from sync_engine.domain import AuthRevokedError, Provider, WatchState
from sync_engine.job_queue import Jobs
from sync_engine.services.collaborators import Clock, SessionFactory
from sync_engine.services.connection_status import ConnectionStatuses
from sync_engine.services.connections import new_client_state, webhook_url
from sync_engine.services.mailboxes import Mailboxes

log = logging.getLogger(__name__)

RENEW_AHEAD = timedelta(hours=24)
SETUP_GRACE = timedelta(minutes=10)
REAUTH_DETAIL = "the mailbox must be connected again"


class WatchFailed(Exception):
    """The provider refused or failed the push registration; the job retries it."""


@dataclass(frozen=True)
class WatchService:
    sessions: SessionFactory
    mailboxes: Mailboxes
    statuses: ConnectionStatuses
    jobs: Jobs
    clock: Clock
    public_base_url: str

    async def _usable(self, connection_id: uuid.UUID) -> EmailConnection | None:
        async with self.sessions() as session:
            conn = await repo.by_id(session, connection_id)
        if conn is None or not conn.is_current or conn.token_ciphertext is None:
            return None
        return conn

    async def setup_connection(self, connection_id: uuid.UUID) -> None:
        """(Re)create the watch, then run a sync (the first one imports the mailbox).

        The sync is requested whatever happens to the watch: a mailbox without push still
        imports, and the hourly renewal job retries connections that have no watch.
        """
        conn = await self._usable(connection_id)
        if conn is None:
            return
        client = self.mailboxes.client_for(conn)
        failure: str | None = None
        try:
            if conn.watch_id and conn.watch_expires_at:
                try:
                    await client.stop_watch(WatchState(conn.watch_id, conn.watch_expires_at))
                except Exception as exc:  # the old one may be gone already
                    log.info("stopping the old watch of %s failed: %s", connection_id, type(exc).__name__)
            secret = new_client_state()
            state = await client.watch(webhook_url(self.public_base_url, Provider(conn.provider)), secret)
        except AuthRevokedError:
            await self.statuses.set(connection_id, ConnectionStatus.REAUTH_REQUIRED, REAUTH_DETAIL)
            return
        except Exception as exc:
            failure = type(exc).__name__
        finally:
            await client.aclose()
        if failure is None:
            async with self.sessions.begin() as session:
                stored = await repo.store_watch(session, connection_id,
                                                watch_id=state.subscription_id or conn.address.lower(),
                                                expires_at=state.expires_at, client_state_hash=sha256_hex(secret))
            if not stored:  # disconnected while we registered: take the registration down again
                await self._stop_quietly(conn, state)
                return
        async with self.sessions.begin() as session:
            await repo.bump_sync_request(session, connection_id)
        await self.jobs.sync_mailbox(connection_id)
        if failure is not None:
            await self.statuses.set(connection_id, ConnectionStatus.ERROR,
                                    "live updates could not be registered; retrying", error=failure)
            raise WatchFailed(failure)

    async def _stop_quietly(self, conn: EmailConnection, state: WatchState) -> None:
        client = self.mailboxes.client_for(conn)
        try:
            await client.stop_watch(state)
        except Exception as exc:
            log.info("stopping a watch of %s failed: %s", conn.id, type(exc).__name__)
        finally:
            await client.aclose()

    async def renew_watch(self, connection_id: uuid.UUID) -> None:
        conn = await self._usable(connection_id)
        if conn is None:
            return
        if conn.watch_expires_at is None:  # never registered (or lost): register afresh
            await self.setup_connection(connection_id)
            return
        client = self.mailboxes.client_for(conn)
        try:
            state = await client.renew_watch(WatchState(conn.watch_id, conn.watch_expires_at))
        except AuthRevokedError:
            await self.statuses.set(connection_id, ConnectionStatus.REAUTH_REQUIRED, REAUTH_DETAIL)
            return
        except Exception as exc:
            log.info("renewing the watch of %s failed (%s); creating a new one", connection_id, type(exc).__name__)
            await client.aclose()
            await self.setup_connection(connection_id)
            return
        finally:
            await client.aclose()
        async with self.sessions.begin() as session:
            await repo.extend_watch(session, connection_id, state.expires_at)

    async def expiring_watches(self) -> list[uuid.UUID]:
        async with self.sessions() as session:
            return await repo.expiring_watch_ids(session, self.clock(), renew_ahead=RENEW_AHEAD,
                                                 setup_grace=SETUP_GRACE)
