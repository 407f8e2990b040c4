"""The worker's supervisor (``emailsync worker``) in this process, on a Redis of the test's
own: a queue loop that ends cancelled from outside (not by our stop) is a failure like
any other, and the supervisor starts a new one instead of letting the process end; the
restart delays carry jitter, so workers that lost the same Redis come back spread out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis

from emailsync import worker as worker_module
from sandbox.server import SandboxServer
from tests.support.databases import create_database
from tests.support.private_redis import PrivateRedis
from tests.support.stack import free_port, stack_settings

pytestmark = [pytest.mark.redis]

# arq's health check, written by a queue loop once it polls (the Redis is the test's own).
HEALTH_KEYS = "*:health-check"


def _queue_loops() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "arq-worker" and not t.done()]


async def _wait_for_loop(other_than: asyncio.Task[object] | None, supervisor: asyncio.Task[None],
                         redis: Redis) -> asyncio.Task[object]:
    """A queue loop other than ``other_than``, once it polls (it wrote its health check)."""
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        assert not supervisor.done(), "the supervisor ended"
        loops = [t for t in _queue_loops() if t is not other_than]
        if loops and await redis.keys(HEALTH_KEYS):
            return loops[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no queue loop is polling")


async def test_a_queue_loop_cancelled_from_outside_is_replaced(
    sandbox_server: SandboxServer, private_redis: PrivateRedis, tmp_path: Path, encryption_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = await create_database("sqlite", tmp_path)
    settings = stack_settings(database_url=url, redis_url=private_redis.url, sandbox_url=sandbox_server.base_url,
                              ca_file=sandbox_server.ca_file, port=free_port(), encryption_key=encryption_key)
    monkeypatch.setattr(worker_module, "get_settings", lambda: settings)
    stop = asyncio.Event()
    redis = Redis.from_url(private_redis.url)
    supervisor = asyncio.create_task(worker_module.supervise(stop))
    try:
        first = await _wait_for_loop(None, supervisor, redis)
        await redis.delete(*await redis.keys(HEALTH_KEYS))  # the next loop writes its own
        # Cancelled, not by our stop (again if a library on the way swallowed one cancellation).
        deadline = asyncio.get_running_loop().time() + 30
        while not first.done() and asyncio.get_running_loop().time() < deadline:
            first.cancel()
            await asyncio.wait({first}, timeout=0.2)
        assert first.cancelled()
        second = await _wait_for_loop(first, supervisor, redis)
        assert second is not first and not supervisor.done()
    finally:
        stop.set()
        await asyncio.wait_for(supervisor, 30)
        await redis.aclose()


def test_restart_delays_carry_jitter() -> None:
    for failures in range(6):
        base = worker_module.RESTART_BACKOFF.compute(failures)
        delays = [worker_module.restart_delay(failures) for _ in range(200)]
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays), (base, min(delays), max(delays))
        assert max(delays) - min(delays) > base * 0.2, (base, min(delays), max(delays))
