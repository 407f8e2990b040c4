"""``emailsync worker``: the arq worker running ``sync_engine.jobs`` on Redis, supervised.

arq's own worker ends for good when Redis goes away: its poll loop raises
``ConnectionError``, and so does its ``close()`` (DESIGN.md section 6). ``run_forever``
owns the process instead. It builds a ``WakingWorker`` (arq's Worker, woken by each
enqueue instead of only by its poll timer: ``sync_engine/arq_queue.py``) from
``WorkerSettings`` and runs it; when that Worker stops on a Redis error, no new job is taken and the jobs in flight
get a grace period to finish (a send cancelled mid-DATA could only end "uncertain");
what is still running then is cancelled (every job may run again: a cancelled sync
pass releases its mailbox, an outbox claim guards its send). The supervisor closes what
can still be closed, logs one line, waits (capped exponential backoff with jitter, so
workers that lost the same Redis do not all come back at once) and starts a new Worker. Each new Worker runs the periodic safety
nets at once: a Redis that came back empty holds no jobs, and the database is the
truth of what is pending. SIGTERM and SIGINT stop it cleanly, in any state.

The database can go away too: a job that fails because a connection was dropped
(server restart, ``pg_terminate_backend``) or could not be opened is retried with
backoff instead of failing (see ``db/engine.py`` for how the pool renews connections).

Also runnable as plain arq (``arq emailsync.worker.WorkerSettings``), unsupervised.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import signal
from contextlib import AsyncExitStack, suppress
from typing import Any

from arq import Retry, cron
from arq.connections import RedisSettings
from arq.worker import Worker, func, get_kwargs
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from emailsync.runtime import job_context, open_runtime
from sync_engine import metrics
from sync_engine.arq_queue import ArqQueue, WakingWorker, redis_pool
from sync_engine.job_queue import PERIODIC, RETRY, RetryLater, connection_lost
from sync_engine.jobs import JOBS
from sync_engine.logging_setup import job_context as log_context
from sync_engine.settings import get_settings

log = logging.getLogger(__name__)

# Restarts after losing Redis: 0.5 s, 1 s, 2 s ... at most 10 s apart, so a worker is
# back within seconds of Redis, without hammering a Redis that is down for long.
RESTART_BACKOFF = ExponentialBackoff(cap=10.0, base=0.5)
# A Worker that ran this long was healthy: the next restart starts the backoff afresh.
HEALTHY_RUN_SECONDS = 60.0
# Restart delays vary by this fraction either way.
RESTART_JITTER = 0.2
# After the queue loop failed, how long the jobs in flight may run on before they are
# cancelled: long enough for a send or a page import in progress to finish (a relay's
# reply to DATA, a provider call), short enough that the worker is soon back to work.
JOB_GRACE_SECONDS = 30.0
# How long cancelled jobs get to clean up (release leases) before the Worker is dropped.
CLOSE_TIMEOUT = 5.0
_REDIS_LOST = (RedisError, OSError, asyncio.TimeoutError)


class WorkerCancelled(Exception):
    """arq's queue loop ended cancelled, not by our stop."""


def restart_delay(failures: int) -> float:
    """The wait before the next Worker: capped exponential backoff, ±``RESTART_JITTER``."""
    return RESTART_BACKOFF.compute(failures) * random.uniform(1 - RESTART_JITTER, 1 + RESTART_JITTER)


def _arq_job(name: str, job: Any, max_tries: int = RETRY.max_tries) -> Any:
    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any) -> Any:
        job_try = int(ctx.get("job_try", 1))
        retry = "failed" if job_try >= max_tries else "retry"  # arq gives up after a last retry
        try:
            with log_context(ctx.get("job_id"), name):  # every log line of the job carries its id
                result = await job(ctx, *args)
        except RetryLater as exc:
            metrics.JOB_RUNS.labels(job=name, outcome=retry).inc()
            raise Retry(defer=exc.defer_seconds) from exc
        except asyncio.CancelledError:
            metrics.JOB_RUNS.labels(job=name, outcome="retry").inc()  # arq runs a cancelled job again
            raise
        except Exception as exc:
            if not connection_lost(exc):
                metrics.JOB_RUNS.labels(job=name, outcome="failed").inc()
                raise
            metrics.JOB_RUNS.labels(job=name, outcome=retry).inc()
            delay = RETRY.after_connection_loss(job_try)
            log.warning("job %s lost a connection (%s); retrying in %.0f s", name, type(exc).__name__, delay)
            raise Retry(defer=delay) from exc
        metrics.JOB_RUNS.labels(job=name, outcome="ok").inc()
        return result

    run.__qualname__ = name
    return func(run, name=name, max_tries=max_tries)


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    stack = AsyncExitStack()
    # Jobs enqueue follow-up jobs through the Worker's own Redis client (arq puts it in
    # ctx): one connection pool per Worker, replaced with it after a Redis outage.
    backend = ArqQueue(ctx["redis"], settings.queue_name)
    rt = await stack.enter_async_context(open_runtime(settings, backend=backend))
    ctx["runtime"] = rt
    ctx.update(job_context(rt))
    ctx["exit_stack"] = stack


async def shutdown(ctx: dict[str, Any]) -> None:
    if "exit_stack" in ctx:
        await ctx.pop("exit_stack").aclose()


def _schedule(period: int) -> dict[str, Any]:
    """arq cron fields for "every ``period`` seconds" (periods dividing a minute or an hour)."""
    if period < 60:
        return {"second": set(range(0, 60, max(1, period)))}
    if period < 3600:
        return {"minute": set(range(0, 60, max(1, period // 60))), "second": 0}
    return {"minute": {0}, "second": 0}


def _cron_jobs() -> list[Any]:
    # Fresh CronJob objects for each Worker (they hold their next run), all run at start-up:
    # a restarted Worker re-enqueues from the database what an outage lost.
    # arq names a tick's job "<cron name>:<tick time>" and job ids are global to the Redis,
    # not per queue: without the queue name in it, deployments sharing a Redis would each
    # see the other's tick as already queued, and skip their own.
    queue = get_settings().queue_name
    tries = RETRY.periodic_max_tries
    return [cron(_arq_job(f"cron:{name}", JOBS[name], tries).coroutine, name=f"cron:{queue}:{name}",
                 run_at_startup=True, max_tries=tries, **_schedule(period))
            for name, period in PERIODIC]


def _redis_settings() -> RedisSettings | None:
    url = get_settings().redis_url
    return RedisSettings.from_dsn(url) if url else None


class WorkerSettings:
    functions = [_arq_job(str(name), job) for name, job in JOBS.items()]
    cron_jobs = _cron_jobs()
    on_startup = startup
    on_shutdown = shutdown
    queue_name = get_settings().queue_name
    # No guessing: `emailsync worker` refuses to start without EMAILSYNC_REDIS_URL (api.preflight).
    redis_settings = _redis_settings()
    # The longest an idle worker goes between polls; enqueues wake it at once (WakingWorker).
    poll_delay = get_settings().queue_poll_delay
    max_jobs = 20
    job_timeout = 600
    keep_result = 0
    allow_abort_jobs = False


def run_forever() -> None:
    """Run jobs until SIGTERM/SIGINT, through any number of Redis outages."""
    asyncio.run(supervise())


async def supervise(stop: asyncio.Event | None = None) -> None:
    """Run Workers one after another until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, _on_signal, stop, signum)
    failures = 0
    try:
        while not stop.is_set():
            started = loop.time()
            try:
                await _run_one_worker(stop)
                continue  # returns only once stop is set
            except _REDIS_LOST as exc:
                reason = f"lost Redis ({type(exc).__name__}: {exc})"
            except Exception as exc:
                log.exception("worker stopped unexpectedly")
                reason = f"stopped unexpectedly ({type(exc).__name__})"
            if loop.time() - started >= HEALTHY_RUN_SECONDS:
                failures = 0
            delay = restart_delay(failures)
            failures += 1
            metrics.WORKER_RESTARTS.inc()
            log.warning("worker %s; starting a new one in %.1f s", reason, delay)
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("worker stopped")


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    log.info("worker stopping on %s", signal.Signals(signum).name)
    stop.set()


async def _run_one_worker(stop: asyncio.Event) -> None:
    """One arq Worker, from start-up until it fails (raises) or ``stop`` is set (returns)."""
    settings = get_settings()
    if not settings.redis_url:
        raise SystemExit("EMAILSYNC_REDIS_URL is not set: the worker takes its jobs from Redis")
    pool = redis_pool(settings.redis_url, settings.queue_name)
    try:
        await pool.ping()  # Redis still away: one line from the supervisor, no Worker start-up noise
    except BaseException:
        await pool.aclose()
        raise
    # arq types its settings parameter as a dict, but reads a WorkerSettings class as documented.
    worker = WakingWorker(**{**get_kwargs(WorkerSettings), "handle_signals": False,  # type: ignore[arg-type]
                             "cron_jobs": _cron_jobs(), "redis_pool": pool})
    worker.main_task = main = asyncio.create_task(worker.main(), name="arq-worker")
    stopping = asyncio.create_task(stop.wait())
    grace = 0.0
    try:
        await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if main.done() and not stop.is_set():
            grace = JOB_GRACE_SECONDS  # the loop failed: let the jobs in flight finish first
            if main.cancelled():  # not by us: a failure like any other, the Worker is replaced
                raise WorkerCancelled("the queue loop was cancelled")
            main.result()  # raises what stopped it
    finally:
        stopping.cancel()
        await _close(worker, grace, stop)


async def _close(worker: Worker, grace: float = 0.0, stop: asyncio.Event | None = None) -> None:
    """arq's ``Worker.close`` without its assumption that Redis is reachable: give the jobs
    in flight ``grace`` seconds to finish (cut short by ``stop``), cancel what is left and
    let it clean up, then close the runtime and the Redis client."""
    if worker.main_task is not None and not worker.main_task.done():
        worker.main_task.cancel()  # takes no new job from here on
    jobs = [task for task in worker.tasks.values() if not task.done()]
    if jobs and grace > 0:
        log.info("letting %d job(s) in flight finish (at most %.0f s)", len(jobs), grace)
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(asyncio.wait(jobs))}
        stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopping is not None:
            waits.add(stopping)
        try:
            await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
    running = [task for task in [*worker.tasks.values(), worker.main_task] if task is not None and not task.done()]
    for task in running:
        task.cancel()
    if running:
        await asyncio.wait(running, timeout=CLOSE_TIMEOUT)
    for task in worker.tasks.values():
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a job's bookkeeping failing while Redis is down is expected
    if worker.main_task is not None and worker.main_task.done() and not worker.main_task.cancelled():
        worker.main_task.exception()
    if isinstance(worker, WakingWorker):
        await worker.close_wakes()
    with suppress(*_REDIS_LOST):
        await worker.pool.delete(worker.health_check_key)
    try:
        await shutdown(worker.ctx)
    except Exception:
        log.exception("closing the worker's runtime failed")
    with suppress(*_REDIS_LOST):
        await worker.pool.aclose()
