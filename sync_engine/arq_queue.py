"""The Redis-backed job backend (arq). With ``emailsync.worker``, the only modules that import arq.

arq's Worker finds new jobs by polling its queue (a sorted set) every ``poll_delay``: a
job enqueued just after a poll waits out the rest of it, and every idle poll costs Redis
round trips. Here the enqueuer also publishes on the queue's wake channel, and the
``WakingWorker`` waits on that channel between polls, so a job due now starts within a
pub/sub hop (DESIGN.md section 5: "queue polling delays must not dominate"). The poll
timer stays as the fallback, for deferred jobs falling due and for a wake-up lost
(pub/sub delivers to whoever listens at that moment, and nothing else).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from sync_engine.job_queue import QueueUnavailable

# A Redis host that goes silent (network partition, failover to another address) must
# surface as an error in seconds, not hang a poll or an enqueue for the OS's TCP timeout:
# the worker's supervisor then reconnects, and a webhook answers within its 3 s budget.
# arq issues no blocking commands, so no reply legitimately takes this long.
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 10.0


def wake_channel(queue_name: str) -> str:
    """The pub/sub channel on which enqueuers wake the workers of ``queue_name``."""
    return f"{queue_name}:wake"


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
            queued = await self._pool.enqueue_job(job, *args, _job_id=job_id, _defer_by=defer_seconds,
                                                  _queue_name=self._queue_name)
            if queued is not None and not defer_seconds:  # None: that job id is queued already
                await self._pool.publish(wake_channel(self._queue_name), b"")
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"{job} not enqueued: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self._pool.aclose()


class WakingWorker(Worker):
    """An arq Worker that polls its queue when an enqueuer publishes on the wake channel,
    and at the latest ``poll_delay`` seconds after its last poll.

    arq's loop polls, then sleeps ``poll_delay``; this Worker gives arq's loop no delay
    and does its waiting at the end of each poll instead, on the wake channel. A wake-up
    published while a poll runs stays in the subscription's socket and ends the next wait
    at once, so none is missed between polls. (Relies on arq's ``_poll_iteration``; arq is
    pinned in pyproject.toml, tests/unit/pins/test_arq_pin.py guards it.)
    """

    def __init__(self, *args: Any, poll_delay: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, poll_delay=0, **kwargs)
        self.wake_timeout = poll_delay
        self._wakes: Any = None  # redis PubSub, subscribed at the first poll

    async def _poll_iteration(self) -> None:
        await super()._poll_iteration()
        await self._wait_for_wake()

    async def _wait_for_wake(self) -> None:
        if self._wakes is None:
            wakes = self.pool.pubsub(ignore_subscribe_messages=True)
            await wakes.subscribe(wake_channel(self.queue_name))
            self._wakes = wakes
        # Returns on the first wake-up (or after the timeout); the ones after it, published
        # during the same wait, would only cause empty polls: drop them now.
        if await self._wakes.get_message(timeout=self.wake_timeout) is not None:
            while await self._wakes.get_message(timeout=0) is not None:
                pass

    async def close_wakes(self) -> None:
        """Unsubscribe and release the wake channel's connection (never raises)."""
        wakes, self._wakes = self._wakes, None
        if wakes is not None:
            with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
                await wakes.aclose()
