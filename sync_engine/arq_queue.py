"""The Redis-backed job queue (arq). One of the two modules that import arq."""

from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError

from sync_engine.queue import QueueUnavailable



class ArqQueue:
    def __init__(self, pool: ArqRedis, queue_name: str) -> None:
        self._pool = pool
        self._queue_name = queue_name

    @classmethod
    async def connect(cls, redis_url: str, queue_name: str) -> ArqQueue:
        return cls(await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue_name), queue_name)

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
