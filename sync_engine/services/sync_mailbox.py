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
from dataclasses import dataclass
from datetime import timedelta

from db.models import ConnectionStatus, EmailConnection
from db.repositories import connections as repo
from sync_engine.domain import AuthRevokedError, CursorExpiredError, ThrottledError
from sync_engine.services.collaborators import Clock, EventPublisher, SessionFactory
from sync_engine.services.connection_status import ConnectionStatuses
from sync_engine.services.import_changes import LeaseLost, PageImporter
from sync_engine.services.mailboxes import Mailboxes

log = logging.getLogger(__name__)

REAUTH_DETAIL = "the mailbox must be connected again"


class SyncDeferred(Exception):
    """The provider asked us to slow down; retry the job after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class MailboxSyncService:
    sessions: SessionFactory
    mailboxes: Mailboxes
    statuses: ConnectionStatuses
    events: EventPublisher
    clock: Clock
    lease_length: timedelta
    # A name for this process, used (with a per-job suffix) as the owner of mailbox sync leases.
    instance: str

    async def sync_connection(self, connection_id: uuid.UUID) -> bool:
        """Run passes until no request is pending. False when another process holds the lease
        (or a throttled pass blocked the mailbox until its retry time)."""
        owner = f"{self.instance}:{uuid.uuid4().hex[:8]}"
        async with self.sessions.begin() as session:
            if not await repo.sync_requested(session, connection_id):
                return True  # a duplicate job: the pass that served the request already ran
            now = self.clock()
            if not await repo.acquire_sync_lease(session, connection_id, owner, now, now + self.lease_length):
                return False
        try:
            async with self._heartbeat(connection_id, owner) as lease:
                return await self._passes(connection_id, owner, lease)
        except LeaseLost:
            log.warning("sync pass of connection %s lost its lease; stopping", connection_id)
            return True
        except SyncDeferred as exc:
            # Blocked until the provider allows another call: the job's own deferred retry
            # runs then; the resume safety net and duplicate jobs skip the mailbox until then.
            async with self.sessions.begin() as session:
                await repo.defer_sync_lease(session, connection_id, owner,
                                            self.clock() + timedelta(seconds=exc.retry_after))
            raise
        except BaseException:
            async with self.sessions.begin() as session:
                await repo.drop_sync_lease(session, connection_id, owner)
            raise

    async def _passes(self, connection_id: uuid.UUID, owner: str, lease: _Lease) -> bool:
        while True:
            async with self.sessions() as session:
                conn = await repo.by_id(session, connection_id)
            if conn is None or not conn.is_current or conn.token_ciphertext is None:
                return True
            requested = conn.sync_requested_seq
            async with lease.interruptible():
                await self._one_pass(conn, owner, lease)
            async with self.sessions.begin() as session:
                await repo.finish_pass(session, connection_id, owner, served_seq=requested, now=self.clock())
                if await repo.release_sync_lease(session, connection_id, owner):
                    return True
                if not await repo.holds_sync_lease(session, connection_id, owner):
                    return True  # another pass owns the mailbox now; it serves the pending requests

    @contextlib.asynccontextmanager
    async def _heartbeat(self, connection_id: uuid.UUID, owner: str) -> AsyncIterator[_Lease]:
        """Renew the lease every quarter of its length while the passes run, so a slow page
        (throttling, large attachments) never lets it lapse while this worker is alive. A
        renewal that finds the lease gone stops the pass: another pass owns the mailbox."""
        current = asyncio.current_task()
        assert current is not None
        lease = _Lease(connection_id, current)

        async def beat() -> None:
            every = self.lease_length.total_seconds() / 4
            while True:
                await asyncio.sleep(every)
                try:
                    async with self.sessions.begin() as session:
                        renewed = await repo.renew_sync_lease(session, connection_id, owner,
                                                              self.clock() + self.lease_length)
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

    async def _one_pass(self, conn: EmailConnection, owner: str, lease: _Lease) -> None:
        client = self.mailboxes.client_for(conn)
        importer = PageImporter(self.sessions, self.clock, conn, client)
        first_sync = conn.cursor is None
        if first_sync:
            await self.statuses.set(conn.id, ConnectionStatus.SYNCING, "importing the mailbox")
        try:
            cursor = conn.cursor
            for attempt in range(2):
                try:
                    # Closed as soon as the pass stops: the adapter fetches a page ahead.
                    async with contextlib.aclosing(client.sync(cursor)) as pages:
                        async for page in pages:
                            lease.check()
                            events = await importer.apply(page, owner, self.lease_length)
                            # The page's events are in the log; one relay announces them.
                            await self.events.publish_all(events)
                    break
                except CursorExpiredError:
                    if attempt:
                        raise
                    log.info("cursor of connection %s expired: full resync", conn.id)
                    cursor = None
                    async with self.sessions.begin() as session:
                        if not await repo.reset_cursor(session, conn.id, owner):
                            raise LeaseLost(conn.id) from None
        except AuthRevokedError:
            await self.statuses.set(conn.id, ConnectionStatus.REAUTH_REQUIRED, REAUTH_DETAIL)
            return
        except ThrottledError as exc:
            raise SyncDeferred(exc.retry_after) from exc
        except LeaseLost:
            raise
        except Exception as exc:
            # Pages already applied stay committed with their cursor; the retry resumes there.
            await self.statuses.set(conn.id, ConnectionStatus.ERROR, "sync failed; retrying",
                                    error=type(exc).__name__)
            raise
        finally:
            await client.aclose()
        async with self.sessions() as session:
            fresh = await repo.by_id(session, conn.id)
        if fresh is not None and fresh.status in (ConnectionStatus.SYNCING, ConnectionStatus.ERROR):
            await self.statuses.set(conn.id, ConnectionStatus.ACTIVE, None)
        elif fresh is not None and first_sync:
            await self.statuses.announce(fresh)

    async def pending_syncs(self) -> list[uuid.UUID]:
        async with self.sessions() as session:
            return await repo.pending_sync_connections(session, self.clock())


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
