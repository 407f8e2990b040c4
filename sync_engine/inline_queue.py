"""The embedded job queue: runs job functions as asyncio tasks in this process.

Used when no Redis URL is configured (``emailsync dev``, SQLite tests). It keeps
arq's useful semantics: job-id de-duplication while a job waits, deferral, and
retries when a job raises ``RetryLater`` or loses a connection, with the retry policy
and periodic schedule the worker uses (``sync_engine.job_queue``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from sync_engine.job_queue import RETRY, JobName, RetryLater, RetryPolicy, connection_lost

log = logging.getLogger(__name__)

JobFunc = Callable[..., Awaitable[Any]]


class InlineQueue:
    def __init__(self, jobs: Mapping[str, JobFunc], ctx: dict[str, Any], retry: RetryPolicy = RETRY) -> None:
        self._jobs = jobs
        self.ctx = ctx  # the composition root adds the services once they are built
        self._retry = retry
        self._waiting: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._periodic: set[asyncio.Task[None]] = set()
        self._closed = False

    async def enqueue(
        self, job: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None
    ) -> None:
        if self._closed:
            return
        if job not in self._jobs:
            raise KeyError(f"unknown job {job!r}")
        if job_id is not None:
            if job_id in self._waiting:
                return
            self._waiting.add(job_id)
        task = asyncio.create_task(self._run(job, args, job_id, defer_seconds or 0.0))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: str, args: tuple[Any, ...], job_id: str | None, delay: float) -> None:
        max_tries = self._retry.periodic_max_tries if job_id == f"periodic:{job}" else self._retry.max_tries
        tries = 0
        try:
            while True:
                if delay:
                    await asyncio.sleep(delay)
                tries += 1
                try:
                    await self._jobs[job]({**self.ctx, "job_try": tries}, *args)
                    return
                except RetryLater as exc:
                    delay = exc.defer_seconds
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not connection_lost(exc):
                        log.exception("job %s failed", job)
                        return
                    delay = self._retry.after_connection_loss(tries)
                if tries >= max_tries:
                    log.warning("job %s gave up after %d tries", job, tries)
                    return
        finally:
            # Like arq, a job id stays taken while the job waits, runs and retries.
            if job_id is not None:
                self._waiting.discard(job_id)

    def start_periodic(self, schedule: Iterable[tuple[JobName, int]]) -> None:
        """Run each named job every ``period`` seconds (the embedded stand-in for arq cron)."""

        async def every(job: str, period: int) -> None:
            while not self._closed:
                await asyncio.sleep(period)
                await self.enqueue(job, job_id=f"periodic:{job}")

        for job, period in schedule:
            self._periodic.add(asyncio.create_task(every(job, period)))

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no job is pending (tests and graceful shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks and loop.time() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - loop.time()))

    async def close(self) -> None:
        self._closed = True
        pending = [*self._tasks, *self._periodic]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
