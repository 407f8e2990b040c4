"""How services hand work to the sync engine's jobs.

Two implementations of one small interface: ``inline_queue.InlineQueue`` runs the
job functions in this process (the embedded default, no Redis), and
``arq_queue.ArqQueue`` enqueues them on Redis for ``emailsync worker``. Job
functions are plain ``async def job(ctx, ...)`` in ``sync_engine.jobs``.
"""

from __future__ import annotations

from typing import Any, Protocol


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
