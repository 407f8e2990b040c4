"""A worker killed (SIGKILL) at random points of a large mailbox import: each time a new
worker takes the mailbox over within seconds (the dead one's short sync lease lapses,
the resume safety net starts a pass), and in the end every provider message is in the
CRM exactly once. PostgreSQL + Redis, the API in this process, ``emailsync worker``
processes the test starts and kills.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
import uuid
from contextlib import ExitStack

import pytest
from sqlalchemy import func, select

from db.models import ConnectionStatus, EmailConnection, Message
from tests.support.flows import START, app_page, finish_sign_in
from tests.support.stack import Stack, worker_process

MESSAGES = 5000
KILLS = 3
# A short lease (the production default is 20 s) keeps the test quick; the takeover
# bound below follows from it.
LEASE_SECONDS = 5.0
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.stack_settings(sync_lease_seconds=LEASE_SECONDS)]
RESUME_PERIOD = 10.0  # resume_pending_syncs' period (sync_engine/jobs.py PERIODIC)
# From a kill to the next worker's first page: the lease running out, the next resume
# tick, a worker process starting, on a busy 2-core machine.
TAKEOVER_BOUND = LEASE_SECONDS + RESUME_PERIOD + 20.0
FINISH_BOUND = 120.0  # from the last restart to the import's end


async def seed(stack: Stack, mailbox: str, contacts: list[str]) -> set[str]:
    """The mailbox, with MESSAGES inbound messages from contacts (so every one syncs)."""
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": "outlook", "address": mailbox, "name": "Owner"})
    ids: set[str] = set()
    for start in range(0, MESSAGES, 500):
        specs = [{"from": contacts[i % len(contacts)], "to": [mailbox], "subject": f"Viewing {i // 4}",
                  "text": f"Message {i}"} for i in range(start, min(MESSAGES, start + 500))]
        response = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound/bulk", json={"messages": specs})
        assert response.status_code == 201, response.text
        ids.update(m["id"] for m in response.json())
    assert len(ids) == MESSAGES
    return ids


async def connection(stack: Stack, user_id: uuid.UUID) -> EmailConnection | None:
    async with stack.runtime.sessions() as session:
        return await session.scalar(select(EmailConnection).where(EmailConnection.user_id == user_id,
                                                                 EmailConnection.is_current.is_(True)))


async def test_an_import_survives_killed_workers_without_loss_duplicates_or_a_long_stall(
    api_without_worker: Stack,
) -> None:
    stack = api_without_worker
    rng = random.Random()
    seed_value = rng.randrange(1_000_000)
    rng.seed(seed_value)
    print(f"\nrandom seed {seed_value}")
    contacts = [f"client{i}-{uuid.uuid4().hex[:4]}@client.example" for i in range(50)]
    tenant = await stack.seed_tenant(name="Crash Import", contacts=tuple(contacts))
    mailbox = tenant.user_email
    ids = await seed(stack, mailbox, contacts)

    async def synced_count() -> int:
        conn = await connection(stack, tenant.user_id)
        return conn.messages_synced if conn is not None else 0

    with ExitStack() as workers:
        worker: subprocess.Popen[bytes] = workers.enter_context(worker_process(stack.settings))
        data = await stack.graphql(START, {"input": {"provider": "OUTLOOK", "redirectUri": app_page(stack),
                                                     "loginHint": mailbox}}, token=tenant.token)
        assert data["startEmailConnection"]["userErrors"] == [], data
        await finish_sign_in(stack, tenant, data["startEmailConnection"]["authorizationUrl"], app_page(stack))

        figures: list[dict[str, float]] = []
        last_restart = time.monotonic()
        killed_at_count = 0

        async def taken_over() -> None:
            """Until a page beyond what the killed worker committed is in (the new worker's)."""
            async def progressed() -> int | None:
                count = await synced_count()
                return count if count > killed_at_count else None

            await stack.wait_for(progressed, timeout=TAKEOVER_BOUND + 30, interval=0.05, what="import progress")
            if figures:
                figures[-1]["first page after restart (s)"] = round(time.monotonic() - last_restart, 1)
                assert figures[-1]["first page after restart (s)"] < TAKEOVER_BOUND, figures

        for kill in range(KILLS):
            # The new worker (or the first) is importing; kill it a random moment later.
            await taken_over()
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            killed_at_count = await synced_count()  # what the dead worker committed
            assert killed_at_count < MESSAGES, f"the import ended before kill {kill + 1}: make the mailbox larger"
            worker = workers.enter_context(worker_process(stack.settings))
            last_restart = time.monotonic()
            figures.append({"kill": kill + 1, "messages synced at the kill": killed_at_count})
        await taken_over()

        async def finished() -> EmailConnection | None:
            conn = await connection(stack, tenant.user_id)
            done = (conn is not None and conn.messages_synced >= MESSAGES and conn.status == ConnectionStatus.ACTIVE
                    and conn.sync_lease_owner is None)
            return conn if done else None

        conn = await stack.wait_for(finished, timeout=FINISH_BOUND + 60, interval=0.25, what="the import to finish")
        to_finish = time.monotonic() - last_restart
        print(f"figures: {figures}; last restart -> import finished: {to_finish:.1f} s")
        assert to_finish < FINISH_BOUND, to_finish

    async with stack.runtime.sessions() as session:
        copies = dict((await session.execute(
            select(Message.provider_message_id, func.count()).where(Message.connection_id == conn.id)
            .group_by(Message.provider_message_id))).all())
    assert {pid for pid, n in copies.items() if n != 1} == set(), "a provider message imported twice"
    assert ids - set(copies) == set(), f"{len(ids - set(copies))} provider messages missing"
    assert set(copies) == ids
    assert conn.messages_synced == MESSAGES
