"""Provider push registrations: create on connect, renew before expiry, re-create when removed.

Graph message subscriptions live at most 4,230 minutes; Gmail watches 7 days.
The renewal job runs hourly and renews anything expiring within a day.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from db.base import utcnow
from db.models import ConnectionStatus, EmailConnection
from db.repositories import mailbox_sync as repo
from sync_engine.crypto import sha256_hex
from sync_engine.domain import AuthRevokedError, Provider, WatchState
from sync_engine.runtime import Runtime
from sync_engine.services.connections import new_client_state, set_status, webhook_url
from sync_engine.services.tokens import client_for

log = logging.getLogger(__name__)

RENEW_AHEAD = timedelta(hours=24)
SETUP_GRACE = timedelta(minutes=10)


class WatchFailed(Exception):
    """The provider refused or failed the push registration; the job retries it."""


async def setup_connection(rt: Runtime, connection_id: uuid.UUID) -> None:
    """(Re)create the watch, then run a sync (the first one imports the mailbox).

    The sync is requested whatever happens to the watch: a mailbox without push still
    imports, and the hourly renewal job retries connections that have no watch.
    """
    async with rt.sessions() as session:
        conn = await session.get(EmailConnection, connection_id)
    if conn is None or not conn.is_current or conn.token_ciphertext is None:
        return
    client = client_for(rt, conn)
    failure: str | None = None
    try:
        if conn.watch_id and conn.watch_expires_at:
            try:
                await client.stop_watch(WatchState(conn.watch_id, conn.watch_expires_at))
            except Exception as exc:  # the old one may be gone already
                log.info("stopping the old watch of %s failed: %s", connection_id, type(exc).__name__)
        secret = new_client_state()
        state = await client.watch(webhook_url(rt, Provider(conn.provider)), secret)
    except AuthRevokedError:
        await set_status(rt, connection_id, ConnectionStatus.REAUTH_REQUIRED, "the mailbox must be connected again")
        return
    except Exception as exc:
        failure = type(exc).__name__
    finally:
        await client.aclose()
    if failure is None:
        async with rt.sessions.begin() as session:
            stored = await session.execute(
                update(EmailConnection)
                .where(EmailConnection.id == connection_id, EmailConnection.is_current.is_(True))
                .values(watch_id=state.subscription_id or conn.address.lower(), watch_expires_at=state.expires_at,
                        client_state_hash=sha256_hex(secret))
            )
        if stored.rowcount != 1:  # disconnected while we registered: take the registration down again
            await _stop_quietly(rt, conn, state)
            return
    async with rt.sessions.begin() as session:
        await repo.bump_sync_request(session, connection_id)
    await rt.queue.enqueue("sync_mailbox", str(connection_id))
    if failure is not None:
        await set_status(rt, connection_id, ConnectionStatus.ERROR, "live updates could not be registered; retrying",
                         error=failure)
        raise WatchFailed(failure)


async def _stop_quietly(rt: Runtime, conn: EmailConnection, state: WatchState) -> None:
    client = client_for(rt, conn)
    try:
        await client.stop_watch(state)
    except Exception as exc:
        log.info("stopping a watch of %s failed: %s", conn.id, type(exc).__name__)
    finally:
        await client.aclose()


async def renew_watch(rt: Runtime, connection_id: uuid.UUID) -> None:
    async with rt.sessions() as session:
        conn = await session.get(EmailConnection, connection_id)
    if conn is None or not conn.is_current or conn.token_ciphertext is None:
        return
    if conn.watch_expires_at is None:  # never registered (or lost): register afresh
        await setup_connection(rt, connection_id)
        return
    client = client_for(rt, conn)
    try:
        state = await client.renew_watch(WatchState(conn.watch_id, conn.watch_expires_at))
    except AuthRevokedError:
        await set_status(rt, connection_id, ConnectionStatus.REAUTH_REQUIRED, "the mailbox must be connected again")
        return
    except Exception as exc:
        log.info("renewing the watch of %s failed (%s); creating a new one", connection_id, type(exc).__name__)
        await client.aclose()
        await setup_connection(rt, connection_id)
        return
    finally:
        await client.aclose()
    async with rt.sessions.begin() as session:
        await session.execute(
            update(EmailConnection).where(EmailConnection.id == connection_id).values(watch_expires_at=state.expires_at)
        )


async def expiring_watches(rt: Runtime) -> list[uuid.UUID]:
    async with rt.sessions() as session:
        rows = await session.scalars(
            select(EmailConnection.id).where(
                EmailConnection.is_current.is_(True),
                EmailConnection.status.in_(ConnectionStatus.LIVE),
                or_(
                    # Never registered or lost; the grace period leaves a fresh connection's setup alone.
                    and_(EmailConnection.watch_expires_at.is_(None), EmailConnection.connected_at < utcnow() - SETUP_GRACE),
                    EmailConnection.watch_expires_at < utcnow() + RENEW_AHEAD,
                ),
            )
        )
        return list(rows)
