"""The embedded job queue: runs job functions as asyncio tasks in this process.

Used when no Redis URL is configured (``emailsync dev``, SQLite tests). It keeps
arq's useful semantics: job-id de-duplication while a job waits, deferral, and
retries when a job raises ``sync_engine.jobs.RetryLater``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

JobFunc = Callable[..., Awaitable[Any]]


class InlineQueue:
    def __init__(self, jobs: Mapping[str, JobFunc], ctx: dict[str, Any], max_tries: int = 5) -> None:
        self._jobs = jobs
        self._ctx = ctx
        self._max_tries = max_tries
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
        from sync_engine.jobs import RetryLater  # local: jobs imports services, which import this module's users

        tries = 0
        try:
            while True:
                if delay:
                    await asyncio.sleep(delay)
                tries += 1
                try:
                    await self._jobs[job]({**self._ctx, "job_try": tries}, *args)
                    return
                except RetryLater as exc:
                    if tries >= self._max_tries:
                        log.warning("job %s gave up after %d tries", job, tries)
                        return
                    delay = exc.defer_seconds
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("job %s failed", job)
                    return
        finally:
            # Like arq, a job id stays taken while the job waits, runs and retries.
            if job_id is not None:
                self._waiting.discard(job_id)

    def start_periodic(self, schedule: list[tuple[str, int]]) -> None:
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
