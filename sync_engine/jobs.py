"""Job entry points: plain ``async def job(ctx, ...)`` functions.

Both queues run these: ``inline_queue`` in-process, and the arq worker
(``worker.py``, the only module besides ``arq_queue.py`` that imports arq).
``ctx["runtime"]`` is the process's ``Runtime``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sync_engine.domain import ThrottledError
from sync_engine.runtime import Runtime
from sync_engine.services import bulk_send, connections, event_retention, idempotency, outbox, read_state, watches
from sync_engine.services.sync_mailbox import SyncDeferred, pending_syncs, sync_connection

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Run this job again after ``defer_seconds`` (arq ``Retry`` / inline re-run)."""

    def __init__(self, defer_seconds: float) -> None:
        super().__init__(f"retry in {defer_seconds}s")
        self.defer_seconds = defer_seconds


def _rt(ctx: dict[str, Any]) -> Runtime:
    return ctx["runtime"]


def _backoff(ctx: dict[str, Any], base: float = 2.0, cap: float = 300.0) -> float:
    return min(cap, base * 2 ** (int(ctx.get("job_try", 1)) - 1))


async def sync_mailbox(ctx: dict[str, Any], connection_id: str) -> None:
    try:
        await sync_connection(_rt(ctx), uuid.UUID(connection_id))
    except SyncDeferred as exc:
        raise RetryLater(exc.retry_after) from exc
    except Exception as exc:
        log.warning("sync of connection %s failed (%s); retrying", connection_id, type(exc).__name__)
        raise RetryLater(_backoff(ctx)) from exc


async def deliver_outbox(ctx: dict[str, Any], outbox_id: str) -> None:
    try:
        await outbox.deliver(_rt(ctx), uuid.UUID(outbox_id))
    except outbox.DeliveryDeferred as exc:
        raise RetryLater(exc.retry_after) from exc


async def drain_bulk_send(ctx: dict[str, Any], bulk_send_id: str) -> None:
    try:
        await bulk_send.drain(_rt(ctx), uuid.UUID(bulk_send_id))
    except bulk_send.DrainDeferred as exc:
        raise RetryLater(exc.retry_after) from exc


async def setup_connection(ctx: dict[str, Any], connection_id: str) -> None:
    try:
        await watches.setup_connection(_rt(ctx), uuid.UUID(connection_id))
    except (watches.WatchFailed, ThrottledError) as exc:
        raise RetryLater(_backoff(ctx, base=5.0)) from exc


async def renew_watch(ctx: dict[str, Any], connection_id: str) -> None:
    await watches.renew_watch(_rt(ctx), uuid.UUID(connection_id))


async def retire_connection(ctx: dict[str, Any], connection_id: str) -> None:
    await connections.retire_connection(_rt(ctx), uuid.UUID(connection_id))


async def write_back_read_state(ctx: dict[str, Any], connection_id: str, provider_ids: list[str], is_read: bool) -> None:
    try:
        await read_state.write_back(_rt(ctx), uuid.UUID(connection_id), provider_ids, is_read)
    except ThrottledError as exc:
        raise RetryLater(exc.retry_after) from exc


async def requeue_read_writebacks(ctx: dict[str, Any]) -> None:
    """Safety net: CRM read-state changes whose write-back job was lost (queue down, worker
    killed, retries exhausted) are written back to the mailbox."""
    rt = _rt(ctx)
    for (connection_id, is_read), ids in (await read_state.pending_write_backs(rt)).items():
        await rt.queue.enqueue("write_back_read_state", str(connection_id), ids, is_read,
                               job_id=f"read-writeback:{connection_id}:{int(is_read)}")


async def renew_expiring_watches(ctx: dict[str, Any]) -> None:
    rt = _rt(ctx)
    for connection_id in await watches.expiring_watches(rt):
        await rt.queue.enqueue("renew_watch", str(connection_id), job_id=f"renew:{connection_id}")
    # Safety net for "update email": a replaced connection whose retire job was lost
    # (queue down after the new sign-in committed) still holds tokens; retire it here.
    for connection_id in await connections.unretired_connections(rt):
        await rt.queue.enqueue("retire_connection", str(connection_id), job_id=f"retire:{connection_id}")


async def resume_pending_syncs(ctx: dict[str, Any]) -> None:
    """Safety net: sync requests stranded by a dead worker (its lease expired) run again."""
    rt = _rt(ctx)
    for connection_id in await pending_syncs(rt):
        await rt.queue.enqueue("sync_mailbox", str(connection_id))


async def requeue_due_outbox(ctx: dict[str, Any]) -> None:
    """Safety net: items whose job was lost (worker killed) are picked up again."""
    rt = _rt(ctx)
    for outbox_id, attempts in await outbox.due_items(rt):
        # The attempt count in the id: a killed worker's job keeps its own id in the queue
        # (arq forgets it only after the job timeout), and must not block this one.
        await rt.queue.enqueue("deliver_outbox", str(outbox_id), job_id=f"outbox:{outbox_id}:{attempts}")
    # A bulk send's deliveries are drained by its own job; one whose drain died resumes.
    for bulk_send_id in await bulk_send.stranded_bulk_sends(rt):
        await rt.queue.enqueue("drain_bulk_send", str(bulk_send_id),
                               job_id=f"bulk:{bulk_send_id}:{uuid.uuid4().hex[:8]}")


async def purge_event_log(ctx: dict[str, Any]) -> None:
    """Events past the log's retention are removed (resuming from them says EVENTS_MISSED)."""
    await event_retention.purge_expired_events(_rt(ctx))


async def purge_idempotency_keys(ctx: dict[str, Any]) -> None:
    """Keys older than 24 hours answer nothing any more: drop them."""
    await idempotency.purge_expired(_rt(ctx))


JobFunc = Callable[..., Awaitable[Any]]

JOBS: dict[str, JobFunc] = {
    "sync_mailbox": sync_mailbox,
    "deliver_outbox": deliver_outbox,
    "drain_bulk_send": drain_bulk_send,
    "setup_connection": setup_connection,
    "renew_watch": renew_watch,
    "retire_connection": retire_connection,
    "write_back_read_state": write_back_read_state,
    "renew_expiring_watches": renew_expiring_watches,
    "requeue_due_outbox": requeue_due_outbox,
    "requeue_read_writebacks": requeue_read_writebacks,
    "resume_pending_syncs": resume_pending_syncs,
    "purge_idempotency_keys": purge_idempotency_keys,
    "purge_event_log": purge_event_log,
}

# (job name, period in seconds) for the periodic jobs; a period divides a minute or an
# hour. The safety nets run often: after a worker died or Redis came back empty they are
# what finds pending work in the database, so their period bounds recovery (a dead
# worker's mailbox: its sync lease, 20 s, plus resume_pending_syncs' period). Each is
# one small query.
PERIODIC: list[tuple[str, int]] = [
    ("renew_expiring_watches", 3600),
    ("requeue_due_outbox", 15),
    ("requeue_read_writebacks", 15),
    ("resume_pending_syncs", 10),
    ("purge_idempotency_keys", 3600),
    ("purge_event_log", 3600),
]
