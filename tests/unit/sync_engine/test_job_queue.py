"""The queue seam: typed job calls, their ids, the shared retry policy and schedule."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from sync_engine.inline_queue import InlineQueue
from sync_engine.job_queue import PERIODIC, RETRY, JobName, Jobs, QueueUnavailable, RetryLater, RetryPolicy
from sync_engine.jobs import JOBS


class Recording:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.calls: list[tuple[str, tuple[Any, ...], str | None]] = []

    async def enqueue(self, job: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None) -> None:
        if self.down:
            raise QueueUnavailable("redis is away")
        self.calls.append((job, args, job_id))

    async def close(self) -> None:
        return None


ID = uuid.UUID("00000000-0000-0000-0000-00000000000a")


async def test_each_job_has_a_typed_call_with_its_name_arguments_and_id() -> None:
    backend = Recording()
    jobs = Jobs(backend)
    await jobs.sync_mailbox(ID)
    await jobs.deliver_outbox(ID)
    await jobs.deliver_outbox(ID, attempts=3)
    await jobs.drain_bulk_send(ID, reason="start")
    await jobs.setup_connection(ID)
    await jobs.renew_watch(ID)
    await jobs.retire_connection(ID)
    await jobs.write_back_read_state(ID, ["m1"], True)
    await jobs.write_back_read_state(ID, ["m1"], False, requeued=True)
    assert backend.calls == [
        ("sync_mailbox", (str(ID),), None),
        ("deliver_outbox", (str(ID),), f"outbox:{ID}"),
        ("deliver_outbox", (str(ID),), f"outbox:{ID}:3"),
        ("drain_bulk_send", (str(ID),), f"bulk:{ID}:start"),
        ("setup_connection", (str(ID),), f"setup:{ID}"),
        ("renew_watch", (str(ID),), f"renew:{ID}"),
        ("retire_connection", (str(ID),), f"retire:{ID}"),
        ("write_back_read_state", (str(ID), ["m1"], True), None),
        ("write_back_read_state", (str(ID), ["m1"], False), f"read-writeback:{ID}:0"),
    ]


async def test_after_commit_calls_survive_a_queue_outage_and_others_raise() -> None:
    jobs = Jobs(Recording(down=True))
    assert await jobs.deliver_outbox(ID, after_commit=True) is False
    with pytest.raises(QueueUnavailable):
        await jobs.sync_mailbox(ID)


def test_every_job_name_has_a_job_function_and_the_schedule_names_only_jobs() -> None:
    assert set(JOBS) == set(JobName)
    assert {name for name, _ in PERIODIC} <= set(JOBS)
    assert all(3600 % period == 0 or 60 % period == 0 for _, period in PERIODIC)


async def _finished(queue: InlineQueue, runs: list[int], count: int) -> None:
    async def until() -> None:
        while len(runs) < count or queue._tasks:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(until(), timeout=10)


async def test_the_inline_queue_retries_with_the_shared_policy() -> None:
    runs: list[int] = []

    async def always_later(ctx: dict[str, Any]) -> None:
        runs.append(ctx["job_try"])
        raise RetryLater(0)

    queue = InlineQueue({"j": always_later}, {}, RetryPolicy(max_tries=4, periodic_max_tries=2))
    await queue.enqueue("j")
    await _finished(queue, runs, 4)
    assert runs == [1, 2, 3, 4]  # given up after max_tries, like arq
    runs.clear()
    await queue.enqueue("j", job_id="periodic:j")  # a periodic tick gets the periodic budget
    await _finished(queue, runs, 2)
    assert runs == [1, 2]
    await queue.close()


async def test_the_inline_queue_retries_a_lost_connection_but_not_a_bug() -> None:
    runs: list[str] = []

    async def flaky(ctx: dict[str, Any], kind: str) -> None:
        runs.append(kind)
        if kind == "connection" and ctx["job_try"] == 1:
            raise ConnectionResetError("database went away")
        if kind == "bug":
            raise ValueError("a bug is not retried")

    queue = InlineQueue({"j": flaky}, {}, RetryPolicy(connection_backoff_cap=0.0))
    await queue.enqueue("j", "connection")
    await queue.enqueue("j", "bug")
    await _finished(queue, runs, 3)
    assert sorted(runs) == ["bug", "connection", "connection"]
    await queue.close()


def test_the_worker_and_the_inline_queue_read_one_policy() -> None:
    assert RETRY.max_tries > RETRY.periodic_max_tries >= 1
    assert RETRY.after_connection_loss(1) == 1.0 and RETRY.after_connection_loss(50) == RETRY.connection_backoff_cap
