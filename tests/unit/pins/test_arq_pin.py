"""What the worker relies on in arq (pinned in pyproject.toml).

``sync_engine/arq_queue.py``'s ``WakingWorker`` does its waiting inside
``Worker._poll_iteration`` and gives arq's loop no delay; ``emailsync/worker.py`` closes a
Worker through ``main_task``, ``tasks``, ``pool``, ``ctx`` and ``health_check_key``. The
behaviour itself is driven against Redis in tests/integration/sync_engine/
test_waking_worker.py; these fail fast, without Redis, naming what moved.
"""

from __future__ import annotations

import inspect
from typing import Any

from arq.worker import Worker, func

from sync_engine.arq_queue import WakingWorker


def test_the_queue_loop_polls_through_poll_iteration_with_the_configured_delay() -> None:
    loop = inspect.getsource(Worker.main)
    assert "self._poll_iteration()" in loop, "revisit WakingWorker: arq's loop no longer calls _poll_iteration"
    assert "poll(self.poll_delay_s)" in loop, "revisit WakingWorker: arq's loop no longer sleeps poll_delay"
    assert inspect.iscoroutinefunction(Worker._poll_iteration)


async def _job(_ctx: dict[str, Any]) -> None:
    return None


JOBS = [func(_job, name="job")]


def test_a_waking_worker_hands_arq_no_poll_delay_and_keeps_its_own() -> None:
    worker = WakingWorker(functions=JOBS, redis_pool=object(), handle_signals=False, poll_delay=7.5)  # type: ignore[arg-type]
    assert worker.poll_delay_s == 0
    assert worker.wake_timeout == 7.5


def test_the_attributes_the_supervisor_closes_a_worker_through() -> None:
    worker = WakingWorker(functions=JOBS, redis_pool=object(), handle_signals=False)  # type: ignore[arg-type]
    for name in ("main_task", "tasks", "ctx", "health_check_key", "pool"):
        assert hasattr(worker, name), f"revisit emailsync/worker.py _close: Worker.{name} is gone"
