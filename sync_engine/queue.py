"""How services hand work to the sync engine's jobs.

Two implementations of one small interface: ``inline_queue.InlineQueue`` runs the
job functions in this process (the embedded default, no Redis), and
``arq_queue.ArqQueue`` enqueues them on Redis for ``emailsync worker``. Job
functions are plain ``async def job(ctx, ...)`` in ``sync_engine.jobs``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    """The queue's backend (Redis) could not be reached; nothing was enqueued."""


class JobQueue(Protocol):
    async def enqueue(
        self, job: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None
    ) -> None:
        """Schedule ``job`` (a name in ``sync_engine.jobs.JOBS``). A ``job_id`` that is
        already waiting is not queued twice. Raises ``QueueUnavailable`` when the backend
        cannot be reached."""
        ...

    async def close(self) -> None: ...


async def enqueue_after_commit(queue: JobQueue, job: str, *args: Any, safety_net: str, **options: Any) -> bool:
    """Enqueue work whose trigger is already committed. When the queue is down the
    caller's change still stands, so this does not raise (a client told "failed" would
    redo a change that is done); ``safety_net`` names what picks the work up later."""
    try:
        await queue.enqueue(job, *args, **options)
    except QueueUnavailable as exc:
        log.warning("queue unavailable, %s deferred to %s (%s)", job, safety_net, exc)
        return False
    return True
