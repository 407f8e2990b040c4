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
- A pass whose heartbeat finds the lease gone (taken over, or the mailbox
  disconnected) is cancelled at once: it stops fetching and downloading instead of
  finding out at its next page write.
- An expired cursor triggers a full resync (dedupe keeps it duplicate-free); a
  revoked grant moves the connection to ``reauth_required``; throttling defers
  the job with the provider's Retry-After, and until then the mailbox stays blocked
  (no owner, but a lease end at the retry time), so neither another job nor the
  resume safety net calls the provider before it allows.
- A job with no pending request (a duplicate: every enqueue bumps the request
  counter first) does nothing.
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
    """Run passes until no request is pending. False when another process holds the lease
    (or a throttled pass blocked the mailbox until its retry time)."""
    owner = f"{rt.instance}:{uuid.uuid4().hex[:8]}"
    async with rt.sessions.begin() as session:
        if not await repo.sync_requested(session, connection_id):
            return True  # a duplicate job: the pass that served the request already ran
        now = utcnow()
        if not await repo.acquire_sync_lease(session, connection_id, owner, now, now + lease_length(rt)):
            return False
    try:
        async with _heartbeat(rt, connection_id, owner) as lease:
            return await _passes(rt, connection_id, owner, lease)
    except LeaseLost:
        log.warning("sync pass of connection %s lost its lease; stopping", connection_id)
        return True
    except SyncDeferred as exc:
        # Blocked until the provider allows another call: the job's own deferred retry
        # runs then; the resume safety net and duplicate jobs skip the mailbox until then.
        async with rt.sessions.begin() as session:
            await repo.defer_sync_lease(session, connection_id, owner,
                                        utcnow() + timedelta(seconds=exc.retry_after))
        raise
    except BaseException:
        async with rt.sessions.begin() as session:
            await repo.drop_sync_lease(session, connection_id, owner)
        raise


async def _passes(rt: Runtime, connection_id: uuid.UUID, owner: str, lease: _Lease) -> bool:
    while True:
        async with rt.sessions() as session:
            conn = await session.get(EmailConnection, connection_id)
        if conn is None or not conn.is_current or conn.token_ciphertext is None:
            return True
        requested = conn.sync_requested_seq
        async with lease.interruptible():
            await _one_pass(rt, conn, owner, lease)
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


class _Lease:
    """What the heartbeat learned, and whether the pass may be cancelled right now (while
    it fetches and imports pages; not while it records the outcome or releases)."""

    def __init__(self, connection_id: uuid.UUID, task: asyncio.Task[object]) -> None:
        self.connection_id = connection_id
        self.lost = False
        self._task = task
        self._interruptible = False

    def on_lost(self) -> None:
        self.lost = True
        if self._interruptible:
            self._task.cancel()

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(self.connection_id)

    @contextlib.asynccontextmanager
    async def interruptible(self) -> AsyncIterator[None]:
        self.check()
        self._interruptible = True
        try:
            yield
        except asyncio.CancelledError:
            # Our own cancellation (the heartbeat's): turn it into LeaseLost. Any other
            # cancellation (the worker stopping) goes on.
            if self.lost and self._task.uncancel() == 0:
                raise LeaseLost(self.connection_id) from None
            raise
        finally:
            self._interruptible = False
        self.check()


@contextlib.asynccontextmanager
async def _heartbeat(rt: Runtime, connection_id: uuid.UUID, owner: str) -> AsyncIterator[_Lease]:
    """Renew the lease every quarter of its length while the passes run, so a slow page
    (throttling, large attachments) never lets it lapse while this worker is alive. A
    renewal that finds the lease gone stops the pass: another pass owns the mailbox."""
    current = asyncio.current_task()
    assert current is not None
    lease = _Lease(connection_id, current)

    async def beat() -> None:
        every = lease_length(rt).total_seconds() / 4
        while True:
            await asyncio.sleep(every)
            try:
                async with rt.sessions.begin() as session:
                    renewed = await repo.renew_sync_lease(session, connection_id, owner, utcnow() + lease_length(rt))
            except Exception as exc:  # the database is away for a moment: try again next beat
                log.warning("could not renew the sync lease of connection %s (%s)", connection_id,
                            type(exc).__name__)
                continue
            if not renewed:
                lease.on_lost()
                return

    task = asyncio.create_task(beat(), name=f"sync-lease-heartbeat:{connection_id}")
    try:
        yield lease
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _one_pass(rt: Runtime, conn: EmailConnection, owner: str, lease: _Lease) -> None:
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
                    lease.check()
                    events = await importer.apply(page, owner, lease_length(rt))
                    await _publish(rt, events)
                break
            except CursorExpiredError:
                if attempt:
                    raise
                log.info("cursor of connection %s expired: full resync", conn.id)
                cursor = None
                async with rt.sessions.begin() as session:
                    reset = await session.execute(
                        update(EmailConnection)
                        .where(EmailConnection.id == conn.id, EmailConnection.sync_lease_owner == owner)
                        .values(cursor=None)
                    )
                if reset.rowcount != 1:
                    raise LeaseLost(conn.id) from None
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
