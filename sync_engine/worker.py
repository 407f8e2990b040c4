"""``emailsync worker``: the arq worker running ``sync_engine.jobs`` on Redis.

Run with ``emailsync worker`` (or ``arq sync_engine.worker.WorkerSettings``).
"""

from __future__ import annotations

import functools
import logging
from contextlib import AsyncExitStack
from typing import Any

from arq import Retry, cron
from arq.connections import RedisSettings
from arq.worker import func

from sync_engine.arq_queue import ArqQueue
from sync_engine.jobs import JOBS, PERIODIC, RetryLater
from sync_engine.runtime import open_runtime
from sync_engine.settings import get_settings

log = logging.getLogger(__name__)


def _arq_job(name: str, job: Any) -> Any:
    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any) -> Any:
        try:
            return await job(ctx, *args)
        except RetryLater as exc:
            raise Retry(defer=exc.defer_seconds) from exc

    run.__qualname__ = name
    return func(run, name=name, max_tries=10)


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    stack = AsyncExitStack()
    queue = await ArqQueue.connect(settings.redis_url or "redis://127.0.0.1:6379", settings.queue_name)
    ctx["runtime"] = await stack.enter_async_context(open_runtime(settings, queue=queue))
    ctx["exit_stack"] = stack
    ctx["own_queue"] = queue


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["exit_stack"].aclose()
    await ctx["own_queue"].close()


def _cron_jobs() -> list[Any]:
    out = []
    for name, period in PERIODIC:
        minutes = set(range(0, 60, max(1, period // 60))) if period < 3600 else {0}
        out.append(cron(_arq_job(f"cron:{name}", JOBS[name]).coroutine, name=f"cron:{name}", minute=minutes,
                        second=0, run_at_startup=True))
    return out


class WorkerSettings:
    functions = [_arq_job(name, job) for name, job in JOBS.items()]
    cron_jobs = _cron_jobs()
    on_startup = startup
    on_shutdown = shutdown
    queue_name = get_settings().queue_name
    redis_settings = RedisSettings.from_dsn(get_settings().redis_url or "redis://127.0.0.1:6379")
    # Notification-to-subscriber latency: do not let queue polling dominate (DESIGN.md section 5).
    poll_delay = get_settings().queue_poll_delay
    max_jobs = 20
    job_timeout = 600
    keep_result = 0
    allow_abort_jobs = False
