"""Job entry points: plain ``async def job(ctx, ...)`` functions.

Both queues run these: ``inline_queue`` in-process, and the arq worker
(``emailsync.worker``). ``ctx["services"]`` is the process's ``Services`` and
``ctx["jobs"]`` its ``Jobs`` seam (for the safety nets that requeue work); the
composition root puts them there. Arguments arrive as the seam encoded them
(``sync_engine.job_queue.Jobs``): ids as strings.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sync_engine.domain import ThrottledError
from sync_engine.job_queue import JobName, Jobs, RetryLater
from sync_engine.services.bulk_send import DrainDeferred
from sync_engine.services.facades import Services
from sync_engine.services.outbox import DeliveryDeferred
from sync_engine.services.sync_mailbox import SyncDeferred
from sync_engine.services.watches import WatchFailed

log = logging.getLogger(__name__)


def _services(ctx: dict[str, Any]) -> Services:
    services: Services = ctx["services"]
    return services


def _jobs(ctx: dict[str, Any]) -> Jobs:
    jobs: Jobs = ctx["jobs"]
    return jobs


def _backoff(ctx: dict[str, Any], base: float = 2.0, cap: float = 300.0) -> float:
    return min(cap, base * 2.0 ** (int(ctx.get("job_try", 1)) - 1))


async def sync_mailbox(ctx: dict[str, Any], connection_id: str) -> None:
    try:
        await _services(ctx).sync.sync_connection(uuid.UUID(connection_id))
    except SyncDeferred as exc:
        raise RetryLater(exc.retry_after) from exc
    except Exception as exc:
        log.warning("sync of connection %s failed (%s); retrying", connection_id, type(exc).__name__)
        raise RetryLater(_backoff(ctx)) from exc


async def deliver_outbox(ctx: dict[str, Any], outbox_id: str) -> None:
    try:
        await _services(ctx).outbox.deliver(uuid.UUID(outbox_id))
    except DeliveryDeferred as exc:
        raise RetryLater(exc.retry_after) from exc


async def drain_bulk_send(ctx: dict[str, Any], bulk_send_id: str) -> None:
    try:
        await _services(ctx).bulk_sends.drain(uuid.UUID(bulk_send_id))
    except DrainDeferred as exc:
        raise RetryLater(exc.retry_after) from exc


async def setup_connection(ctx: dict[str, Any], connection_id: str) -> None:
    try:
        await _services(ctx).watches.setup_connection(uuid.UUID(connection_id))
    except (WatchFailed, ThrottledError) as exc:
        raise RetryLater(_backoff(ctx, base=5.0)) from exc


async def renew_watch(ctx: dict[str, Any], connection_id: str) -> None:
    await _services(ctx).watches.renew_watch(uuid.UUID(connection_id))


async def retire_connection(ctx: dict[str, Any], connection_id: str) -> None:
    await _services(ctx).connections.retire_connection(uuid.UUID(connection_id))


async def write_back_read_state(ctx: dict[str, Any], connection_id: str, provider_ids: list[str], is_read: bool) -> None:
    try:
        await _services(ctx).read_state.write_back(uuid.UUID(connection_id), provider_ids, is_read)
    except ThrottledError as exc:
        raise RetryLater(exc.retry_after) from exc


async def requeue_read_writebacks(ctx: dict[str, Any]) -> None:
    """Safety net: CRM read-state changes whose write-back job was lost (queue down, worker
    killed, retries exhausted) are written back to the mailbox."""
    for (connection_id, is_read), ids in (await _services(ctx).read_state.pending_write_backs()).items():
        await _jobs(ctx).write_back_read_state(connection_id, ids, is_read, requeued=True)


async def renew_expiring_watches(ctx: dict[str, Any]) -> None:
    services, jobs = _services(ctx), _jobs(ctx)
    for connection_id in await services.watches.expiring_watches():
        await jobs.renew_watch(connection_id)
    # Safety net for "update email": a replaced connection whose retire job was lost
    # (queue down after the new sign-in committed) still holds tokens; retire it here.
    for connection_id in await services.connections.unretired_connections():
        await jobs.retire_connection(connection_id)


async def resume_pending_syncs(ctx: dict[str, Any]) -> None:
    """Safety net: sync requests stranded by a dead worker (its lease expired) run again."""
    for connection_id in await _services(ctx).sync.pending_syncs():
        await _jobs(ctx).sync_mailbox(connection_id)


async def requeue_due_outbox(ctx: dict[str, Any]) -> None:
    """Safety net: items whose job was lost (worker killed) are picked up again."""
    services, jobs = _services(ctx), _jobs(ctx)
    for outbox_id, attempts in await services.outbox.due_items():
        await jobs.deliver_outbox(outbox_id, attempts=attempts)
    # A bulk send's deliveries are drained by its own job; one whose drain died resumes.
    for bulk_send_id in await services.bulk_sends.stranded_bulk_sends():
        await jobs.drain_bulk_send(bulk_send_id, reason=f"resume-{uuid.uuid4().hex[:8]}")


async def purge_event_log(ctx: dict[str, Any]) -> None:
    """Events past the log's retention are removed (resuming from them says EVENTS_MISSED)."""
    await _services(ctx).event_log.purge_expired_events()


async def purge_idempotency_keys(ctx: dict[str, Any]) -> None:
    """Keys older than 24 hours answer nothing any more: drop them."""
    await _services(ctx).idempotency.purge_expired()


JobFunc = Callable[..., Awaitable[Any]]

# Keyed by JobName (a str): the queues look jobs up by the name the seam enqueued.
JOBS: dict[str, JobFunc] = {
    JobName.SYNC_MAILBOX: sync_mailbox,
    JobName.DELIVER_OUTBOX: deliver_outbox,
    JobName.DRAIN_BULK_SEND: drain_bulk_send,
    JobName.SETUP_CONNECTION: setup_connection,
    JobName.RENEW_WATCH: renew_watch,
    JobName.RETIRE_CONNECTION: retire_connection,
    JobName.WRITE_BACK_READ_STATE: write_back_read_state,
    JobName.RENEW_EXPIRING_WATCHES: renew_expiring_watches,
    JobName.REQUEUE_DUE_OUTBOX: requeue_due_outbox,
    JobName.REQUEUE_READ_WRITEBACKS: requeue_read_writebacks,
    JobName.RESUME_PENDING_SYNCS: resume_pending_syncs,
    JobName.PURGE_IDEMPOTENCY_KEYS: purge_idempotency_keys,
    JobName.PURGE_EVENT_LOG: purge_event_log,
}
