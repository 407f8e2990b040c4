"""The queue seam: how services hand work to the sync engine's jobs.

Services call one typed method of ``Jobs`` per job (``await jobs.sync_mailbox(id)``);
job names, argument encoding and job-id formats live here and nowhere else. A
``JobBackend`` carries the calls: ``inline_queue.InlineQueue`` runs the job functions
in this process (the embedded default, no Redis), ``arq_queue.ArqQueue`` puts them on
Redis for ``emailsync worker``. Both read the retry policy and the periodic schedule
defined here, so the embedded queue and arq behave alike.

The job functions themselves (``async def job(ctx, ...)``) are in ``sync_engine.jobs``;
arq is imported only by ``arq_queue`` and the worker (an import-linter contract).
"""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)


class JobName(enum.StrEnum):
    SYNC_MAILBOX = "sync_mailbox"
    DELIVER_OUTBOX = "deliver_outbox"
    DRAIN_BULK_SEND = "drain_bulk_send"
    SETUP_CONNECTION = "setup_connection"
    RENEW_WATCH = "renew_watch"
    RETIRE_CONNECTION = "retire_connection"
    WRITE_BACK_READ_STATE = "write_back_read_state"
    # Periodic safety nets and housekeeping.
    RENEW_EXPIRING_WATCHES = "renew_expiring_watches"
    REQUEUE_DUE_OUTBOX = "requeue_due_outbox"
    REQUEUE_READ_WRITEBACKS = "requeue_read_writebacks"
    RESUME_PENDING_SYNCS = "resume_pending_syncs"
    PURGE_IDEMPOTENCY_KEYS = "purge_idempotency_keys"
    PURGE_EVENT_LOG = "purge_event_log"


# (job, period in seconds) for the periodic jobs; a period divides a minute or an hour.
# The safety nets run often: after a worker died or Redis came back empty they are what
# finds pending work in the database, so their period bounds recovery (a dead worker's
# mailbox: its sync lease, 20 s, plus resume_pending_syncs' period). Each is one small query.
PERIODIC: tuple[tuple[JobName, int], ...] = (
    (JobName.RENEW_EXPIRING_WATCHES, 3600),
    (JobName.REQUEUE_DUE_OUTBOX, 15),
    (JobName.REQUEUE_READ_WRITEBACKS, 15),
    (JobName.RESUME_PENDING_SYNCS, 10),
    (JobName.PURGE_IDEMPOTENCY_KEYS, 3600),
    (JobName.PURGE_EVENT_LOG, 3600),
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a job runs before it is given up, for both queues."""

    max_tries: int = 10
    # A periodic safety net that lost the database is tried again soon, but not for long:
    # its next tick comes within seconds anyway.
    periodic_max_tries: int = 3
    # A job that lost a connection (database restart, network blip) waits 1 s, 2 s, 4 s ... at most this.
    connection_backoff_cap: float = 30.0

    def after_connection_loss(self, job_try: int) -> float:
        return min(self.connection_backoff_cap, 2.0 ** (job_try - 1))


RETRY = RetryPolicy()


class QueueUnavailable(Exception):
    """The queue's backend (Redis) could not be reached; nothing was enqueued."""


class RetryLater(Exception):
    """Run this job again after ``defer_seconds`` (arq ``Retry`` / inline re-run)."""

    def __init__(self, defer_seconds: float) -> None:
        super().__init__(f"retry in {defer_seconds}s")
        self.defer_seconds = defer_seconds


def connection_lost(exc: BaseException) -> bool:
    """The job failed because a connection dropped or could not be opened (the database's,
    mostly): a passing condition, worth another try."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, OSError):  # asyncpg's connect errors are raw OSErrors, as are sockets'
            return True
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return False


class JobBackend(Protocol):
    async def enqueue(
        self, job: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None
    ) -> None:
        """Schedule ``job``. A ``job_id`` that is already waiting is not queued twice.
        Raises ``QueueUnavailable`` when the backend cannot be reached."""
        ...

    async def close(self) -> None: ...


class Jobs:
    """One typed method per job. ``after_commit=True`` is for work whose trigger is
    already committed: when the queue is down the caller's change still stands, so the
    call does not raise (a client told "failed" would redo a change that is done) and
    returns False; the periodic safety net named in the log picks the work up later."""

    def __init__(self, backend: JobBackend) -> None:
        self.backend = backend

    async def _put(self, job: JobName, *args: Any, job_id: str | None = None,
                   safety_net: str | None = None) -> bool:
        try:
            await self.backend.enqueue(job.value, *args, job_id=job_id)
        except QueueUnavailable as exc:
            if safety_net is None:
                raise
            log.warning("queue unavailable, %s deferred to %s (%s)", job.value, safety_net, exc)
            return False
        return True

    async def sync_mailbox(self, connection_id: uuid.UUID, *, after_commit: bool = False) -> bool:
        # No job id: every request bumps the mailbox's request counter first, and a job
        # that finds nothing pending returns at once (sync_engine.services.sync_mailbox).
        return await self._put(JobName.SYNC_MAILBOX, str(connection_id),
                               safety_net="the periodic resume_pending_syncs job" if after_commit else None)

    async def deliver_outbox(self, outbox_id: uuid.UUID, *, attempts: int | None = None,
                             after_commit: bool = False) -> bool:
        # The attempt count in the id when the safety net requeues: a killed worker's job
        # keeps its own id in the queue (arq forgets it only after the job timeout), and
        # must not block this one.
        job_id = f"outbox:{outbox_id}" if attempts is None else f"outbox:{outbox_id}:{attempts}"
        return await self._put(JobName.DELIVER_OUTBOX, str(outbox_id), job_id=job_id,
                               safety_net="the periodic requeue_due_outbox job" if after_commit else None)

    async def drain_bulk_send(self, bulk_send_id: uuid.UUID, *, reason: str, after_commit: bool = False) -> bool:
        """``reason`` distinguishes drains that may overlap in the queue (the first, a
        continuation, a safety-net restart); the drain lease keeps them from running twice."""
        return await self._put(JobName.DRAIN_BULK_SEND, str(bulk_send_id), job_id=f"bulk:{bulk_send_id}:{reason}",
                               safety_net="the periodic requeue_due_outbox job" if after_commit else None)

    async def setup_connection(self, connection_id: uuid.UUID, *, after_commit: bool = False) -> bool:
        return await self._put(JobName.SETUP_CONNECTION, str(connection_id), job_id=f"setup:{connection_id}",
                               safety_net="resume_pending_syncs (first import) and the hourly watch job"
                               if after_commit else None)

    async def renew_watch(self, connection_id: uuid.UUID) -> bool:
        return await self._put(JobName.RENEW_WATCH, str(connection_id), job_id=f"renew:{connection_id}")

    async def retire_connection(self, connection_id: uuid.UUID, *, after_commit: bool = False) -> bool:
        return await self._put(JobName.RETIRE_CONNECTION, str(connection_id), job_id=f"retire:{connection_id}",
                               safety_net="the hourly renew_expiring_watches job" if after_commit else None)

    async def write_back_read_state(self, connection_id: uuid.UUID, provider_ids: list[str], is_read: bool, *,
                                    requeued: bool = False, after_commit: bool = False) -> bool:
        """A fresh change is its own job (its ids are not in a waiting one); the safety net's
        requeue of everything pending carries an id, so a slow write-back is not doubled."""
        job_id = f"read-writeback:{connection_id}:{int(is_read)}" if requeued else None
        return await self._put(JobName.WRITE_BACK_READ_STATE, str(connection_id), provider_ids, is_read,
                               job_id=job_id,
                               safety_net="the periodic requeue_read_writebacks job" if after_commit else None)

    async def run_periodic(self, job: JobName) -> bool:
        """Run a periodic job now (operators and tests; the schedule runs them anyway)."""
        return await self._put(job)

    async def close(self) -> None:
        await self.backend.close()
