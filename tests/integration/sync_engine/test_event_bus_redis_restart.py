"""Subscribers keep receiving events after Redis restarts (DESIGN.md section 6)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from broadcaster import Broadcast

from sync_engine.event_backends import SupervisedRedisBackend
from tests.support.stack import free_port


def _start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
            return proc
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


@dataclass
class PrivateRedis:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]

    def restart(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        time.sleep(0.3)
        self.proc = _start_redis(self.port, self.workdir)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of this test's own, so restarting it disturbs nothing else."""
    port = free_port()
    redis = PrivateRedis(port, tmp_path, _start_redis(port, tmp_path))
    yield redis
    redis.proc.terminate()
    redis.proc.wait(timeout=10)


async def _next(subscriber, timeout: float = 10.0) -> str:  # type: ignore[no-untyped-def]
    event = await asyncio.wait_for(subscriber.get(), timeout=timeout)
    return event.message


async def test_a_subscriber_survives_a_redis_restart(private_redis: PrivateRedis) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    backend = SupervisedRedisBackend(url)
    publisher = Broadcast(url)  # another process's plain publisher, like the worker's
    async with Broadcast(backend=backend) as bus, publisher:
        async with bus.subscribe("thread.t1") as subscriber:
            await asyncio.sleep(0.1)
            await publisher.publish("thread.t1", "before")
            assert await _next(subscriber) == "before"

            await asyncio.to_thread(private_redis.restart)

            # Publishing works at once; delivery resumes once the listener has resubscribed.
            for _ in range(100):
                await publisher.publish("thread.t1", "after")
                try:
                    assert await _next(subscriber, timeout=0.2) == "after"
                    break
                except asyncio.TimeoutError:
                    continue
            else:
                raise AssertionError("the subscriber never heard from Redis again")
            assert backend.reconnects >= 1
