"""The worker is woken by each enqueue, not by its poll timer (``sync_engine/arq_queue.py``).

Real Redis, a queue of the test's own, an arq ``WakingWorker`` whose poll timer is set
far beyond the test's patience: a job enqueued through ``ArqQueue`` can only start in
time if the wake-up reached the worker. A deferred job, which publishes no wake-up,
starts from the fallback poll.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from arq.worker import func

from sync_engine.arq_queue import ArqQueue, WakingWorker, redis_pool, wake_channel
from tests.support.databases import REDIS_URL

pytestmark = [pytest.mark.redis]

# Far longer than any wait below: a job that starts at all started because it was woken.
NEVER = 3600.0
PATIENCE = 30.0


@asynccontextmanager
async def running_worker(poll_delay: float) -> AsyncIterator[tuple[ArqQueue, asyncio.Queue[str]]]:
    """A WakingWorker on a fresh queue, subscribed to its wake channel, and an enqueuer."""
    queue_name = f"test-wake:{uuid.uuid4().hex}"
    ran: asyncio.Queue[str] = asyncio.Queue()

    async def note(_ctx: dict[str, Any], label: str) -> None:
        ran.put_nowait(label)

    pool = redis_pool(REDIS_URL, queue_name)
    worker = WakingWorker(functions=[func(note, name="note")], queue_name=queue_name, redis_pool=pool,
                          handle_signals=False, poll_delay=poll_delay, keep_result=0)
    main = asyncio.create_task(worker.main())
    enqueuer = await ArqQueue.connect(REDIS_URL, queue_name)
    try:
        await _until_subscribed(pool, wake_channel(queue_name), main)
        yield enqueuer, ran
    finally:
        main.cancel()
        await asyncio.gather(main, return_exceptions=True)
        await worker.close_wakes()
        await enqueuer.close()
        await pool.aclose()


async def _until_subscribed(pool: Any, channel: str, main: asyncio.Task[None]) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while asyncio.get_running_loop().time() < deadline:
        assert not main.done(), main
        if dict(await pool.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the worker never subscribed to its wake channel")


async def test_an_enqueued_job_wakes_an_idle_worker() -> None:
    async with running_worker(poll_delay=NEVER) as (enqueuer, ran):
        for label in ("first", "second"):  # the second after the worker went idle again
            await enqueuer.enqueue("note", label)
            assert await asyncio.wait_for(ran.get(), PATIENCE) == label


async def test_a_deferred_job_starts_from_the_fallback_poll() -> None:
    async with running_worker(poll_delay=0.2) as (enqueuer, ran):
        await enqueuer.enqueue("note", "later", defer_seconds=0.3)
        assert await asyncio.wait_for(ran.get(), PATIENCE) == "later"


async def test_a_job_id_already_queued_is_not_queued_twice() -> None:
    async with running_worker(poll_delay=NEVER) as (enqueuer, ran):
        await enqueuer.enqueue("note", "once", job_id="same", defer_seconds=NEVER)
        await enqueuer.enqueue("note", "twice", job_id="same")  # refused by arq: no wake-up either
        await enqueuer.enqueue("note", "other")
        assert await asyncio.wait_for(ran.get(), PATIENCE) == "other"
        assert ran.empty()
