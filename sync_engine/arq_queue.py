"""The Redis-backed job backend (arq). With ``emailsync.worker``, the only modules that import arq."""

from __future__ import annotations

import asyncio
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from sync_engine.job_queue import QueueUnavailable

# A Redis host that goes silent (network partition, failover to another address) must
# surface as an error in seconds, not hang a poll or an enqueue for the OS's TCP timeout:
# the worker's supervisor then reconnects, and a webhook answers within its 3 s budget.
# arq issues no blocking commands, so no reply legitimately takes this long.
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 10.0


def redis_pool(redis_url: str, queue_name: str) -> ArqRedis:
    """An arq client for ``redis_url`` (every form redis-py reads: redis://, rediss://,
    unix://, with credentials and db). Connects lazily; closing it closes its connections."""
    pool = ConnectionPool.from_url(redis_url, socket_connect_timeout=CONNECT_TIMEOUT,
                                   socket_timeout=COMMAND_TIMEOUT)
    # redis-py types from_pool as returning Redis, though it builds the subclass it is called on.
    client: ArqRedis = ArqRedis.from_pool(pool)  # type: ignore[assignment]
    client.default_queue_name = queue_name
    return client


class ArqQueue:
    def __init__(self, pool: ArqRedis, queue_name: str) -> None:
        self._pool = pool
        self._queue_name = queue_name

    @classmethod
    async def connect(cls, redis_url: str, queue_name: str, *, tries: int = 6) -> ArqQueue:
        """Connect, checking Redis answers (a few tries a second apart, as arq's own pool did)."""
        pool = redis_pool(redis_url, queue_name)
        try:
            for attempt in range(tries):
                try:
                    await pool.ping()
                    break
                except (RedisError, OSError):
                    if attempt == tries - 1:
                        raise
                    await asyncio.sleep(1.0)
        except BaseException:
            await pool.aclose()
            raise
        return cls(pool, queue_name)

    async def enqueue(
        self, job: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None
    ) -> None:
        try:
            await self._pool.enqueue_job(job, *args, _job_id=job_id, _defer_by=defer_seconds,
                                         _queue_name=self._queue_name)
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"{job} not enqueued: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self._pool.aclose()
