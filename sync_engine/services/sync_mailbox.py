"""Import a mailbox's changes into the CRM.

Design:
- One pass per mailbox at a time: a lease on the connection row. A change
  notification during a pass bumps ``sync_requested_seq``; the lease is released
  only when the pass covered the latest request, otherwise another pass runs.
- The lease is short (``settings.sync_lease_seconds``, 20 s) and renewed while the
  pass lives: by a heartbeat task every quarter of it, and by every page write. A
  worker that dies mid-import (SIGKILL, lost host) so frees its mailboxes within
  seconds, and the ``resume_pending_syncs`` safety net (every 10 s) starts another
  pass. A pass that could not renew in time (its event loop starved) and whose
  mailbox was taken over cannot write: page writes are fenced by the lease owner.
- Every page of changes commits together with the cursor that follows it, so a
  worker killed at any point resumes from the last committed page. Replayed pages
  are harmless: a provider message maps to at most one CRM message (unique per
  connection and provider id, and per connection and Message-ID — the latter
  recognises the Sent-folder copy of a message the CRM sent).
- An expired cursor triggers a full resync (dedupe keeps it duplicate-free); a
  revoked grant moves the connection to ``reauth_required``; throttling defers
  the job with the provider's Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import update

from db.base import utcnow
from db.models import ConnectionStatus, EmailConnection
from db.repositories import mailbox_sync as repo
from sync_engine.domain import AuthRevokedError, CursorExpiredError, ThrottledError
from sync_engine.events import DomainEvent
from sync_engine.runtime import Runtime
from sync_engine.services.connections import publish_connection_event, set_status
from sync_engine.services.import_changes import LeaseLost, PageImporter
from sync_engine.services.tokens import client_for

log = logging.getLogger(__name__)


def lease_length(rt: Runtime) -> timedelta:
    return timedelta(seconds=rt.settings.sync_lease_seconds)


class SyncDeferred(Exception):
    """The provider asked us to slow down; retry the job after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


async def sync_connection(rt: Runtime, connection_id: uuid.UUID) -> bool:
    """Run passes until no request is pending. False when another process holds the lease."""
    owner = f"{rt.instance}:{uuid.uuid4().hex[:8]}"
    async with rt.sessions.begin() as session:
        now = utcnow()
        if not await repo.acquire_sync_lease(session, connection_id, owner, now, now + lease_length(rt)):
            return False
    try:
        async with _heartbeat(rt, connection_id, owner):
            return await _passes(rt, connection_id, owner)
    except LeaseLost:
        log.warning("sync pass of connection %s lost its lease; stopping", connection_id)
        return True
    except BaseException:
        async with rt.sessions.begin() as session:
            await repo.drop_sync_lease(session, connection_id, owner)
        raise


async def _passes(rt: Runtime, connection_id: uuid.UUID, owner: str) -> bool:
    while True:
        async with rt.sessions() as session:
            conn = await session.get(EmailConnection, connection_id)
        if conn is None or not conn.is_current or conn.token_ciphertext is None:
            return True
        requested = conn.sync_requested_seq
        await _one_pass(rt, conn, owner)
        async with rt.sessions.begin() as session:
            await session.execute(
                update(EmailConnection)
                .where(EmailConnection.id == connection_id, EmailConnection.sync_lease_owner == owner)
                .values(sync_done_seq=requested, last_sync_at=utcnow())
            )
            if await repo.release_sync_lease(session, connection_id, owner):
                return True
            if not await repo.holds_sync_lease(session, connection_id, owner):
                return True  # another pass owns the mailbox now; it serves the pending requests


@contextlib.asynccontextmanager
async def _heartbeat(rt: Runtime, connection_id: uuid.UUID, owner: str) -> AsyncIterator[None]:
    """Renew the lease every quarter of its length while the passes run, so a slow page
    (throttling, large attachments) never lets it lapse while this worker is alive."""
    async def beat() -> None:
        every = lease_length(rt).total_seconds() / 4
        while True:
            await asyncio.sleep(every)
            try:
                async with rt.sessions.begin() as session:
                    if not await repo.renew_sync_lease(session, connection_id, owner, utcnow() + lease_length(rt)):
                        return  # released, or taken over: the pass's next page write finds out
            except Exception as exc:  # the database is away for a moment: try again next beat
                log.warning("could not renew the sync lease of connection %s (%s)", connection_id,
                            type(exc).__name__)

    task = asyncio.create_task(beat(), name=f"sync-lease-heartbeat:{connection_id}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _one_pass(rt: Runtime, conn: EmailConnection, owner: str) -> None:
    client = client_for(rt, conn)
    importer = PageImporter(rt, conn, client)
    first_sync = conn.cursor is None
    if first_sync:
        await set_status(rt, conn.id, ConnectionStatus.SYNCING, "importing the mailbox")
    try:
        cursor = conn.cursor
        for attempt in range(2):
            try:
                async for page in client.sync(cursor):
                    events = await importer.apply(page, owner, lease_until=utcnow() + lease_length(rt))
                    await _publish(rt, events)
                break
            except CursorExpiredError:
                if attempt:
                    raise
                log.info("cursor of connection %s expired: full resync", conn.id)
                cursor = None
                async with rt.sessions.begin() as session:
                    await session.execute(update(EmailConnection).where(EmailConnection.id == conn.id).values(cursor=None))
    except AuthRevokedError:
        await set_status(rt, conn.id, ConnectionStatus.REAUTH_REQUIRED, "the mailbox must be connected again")
        return
    except ThrottledError as exc:
        raise SyncDeferred(exc.retry_after) from exc
    except LeaseLost:
        raise
    except Exception as exc:
        # Pages already applied stay committed with their cursor; the retry resumes there.
        await set_status(rt, conn.id, ConnectionStatus.ERROR, "sync failed; retrying", error=type(exc).__name__)
        raise
    finally:
        await client.aclose()
    async with rt.sessions() as session:
        fresh = await session.get(EmailConnection, conn.id)
    if fresh is not None and fresh.status in (ConnectionStatus.SYNCING, ConnectionStatus.ERROR):
        await set_status(rt, conn.id, ConnectionStatus.ACTIVE, None)
    elif fresh is not None and first_sync:
        await publish_connection_event(rt, fresh)


async def pending_syncs(rt: Runtime) -> list[uuid.UUID]:
    async with rt.sessions() as session:
        return await repo.pending_sync_connections(session, utcnow())


async def _publish(rt: Runtime, events: list[DomainEvent]) -> None:
    await rt.events.publish_all(events)  # the page's events are in the log; one relay announces them
