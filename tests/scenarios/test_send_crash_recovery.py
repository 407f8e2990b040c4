"""A worker killed in the middle of sending never causes a second email, and the work
finishes once another worker is up: PostgreSQL + Redis, the API in this process, and
``emailsync worker`` processes the test starts and kills (SIGKILL)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import BulkSend, OutboxItem
from sandbox.server import SandboxServer
from tests.support.sending import (
    BULK_EVENTS,
    SEND,
    SEND_BULK,
    caught,
    configure_relay,
    key,
    wait_until_sent,
)
from tests.support.stack import Stack, worker_process

# Short leases: a dead worker's claims lapse in seconds, so the test waits for that fact
# (the lease in the database) rather than for minutes.
LEASE_SECONDS = 2.0
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.stack_settings(relay_send_lease_seconds=LEASE_SECONDS)]


def kill(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)


async def wait_for_lapsed_claims(stack: Stack) -> None:
    """Until no claim of the killed worker is still held (outbox items and bulk drains)."""
    async def lapsed() -> bool:
        now = datetime.now(UTC)
        async with stack.runtime.sessions() as session:
            items = await session.scalar(select(func.max(OutboxItem.next_attempt_at))
                                         .where(OutboxItem.status == "pending"))
            drains = await session.scalar(select(func.max(BulkSend.drain_lease_until)))
        return all(t is None or t <= now for t in (items, drains))

    await stack.wait_for(lapsed, timeout=30, what="the killed worker's claims to lapse")


async def test_killed_after_the_smtp_server_accepted_the_email_is_not_sent_again(
    api_without_worker: Stack, sandbox_server: SandboxServer
) -> None:
    stack = api_without_worker
    contact = f"held-{uuid.uuid4().hex[:8]}@client.example"
    tenant = await stack.seed_tenant(name="Crash", contacts=(contact,))
    assert (await configure_relay(stack, tenant, sandbox_server))["userErrors"] == []
    # The relay stores the email, then holds its "250 OK" back: the worker dies before it knows.
    (await stack.sandbox.post("/_sandbox/smtp/faults", json={"hold_seconds": 60})).raise_for_status()
    with worker_process(stack.settings) as worker:
        data = await stack.graphql(SEND, {"input": {"to": [contact], "subject": "Exactly once", "text": "x",
                                                    "idempotencyKey": key()}}, token=tenant.token)
        message_id = data["sendEmail"]["message"]["id"]
        assert len(await caught(stack, contact, wait_for=1)) == 1
        kill(worker)
    (await stack.sandbox.delete("/_sandbox/smtp/faults")).raise_for_status()
    await wait_for_lapsed_claims(stack)
    with worker_process(stack.settings):
        state = await wait_until_sent(stack, tenant, message_id, status="UNCERTAIN")
    assert "not sent again" in state["statusDetail"]
    assert len(await caught(stack, contact)) == 1


async def test_a_thousand_recipient_bulk_send_survives_a_killed_worker(
    api_without_worker: Stack, sandbox_server: SandboxServer
) -> None:
    stack = api_without_worker
    tag = uuid.uuid4().hex[:8]
    people = tuple(f"r{i:04d}-{tag}@client.example" for i in range(1000))
    tenant = await stack.seed_tenant(name="Bulk crash", contacts=people)
    relay = await configure_relay(stack, tenant, sandbox_server, maxPerMinute=10_000)
    assert relay["userErrors"] == []
    data = await stack.graphql(SEND_BULK, {"input": {"recipients": list(people), "subject": f"Offer {tag}",
                                                     "text": "Spring offer", "idempotencyKey": key()}},
                               token=tenant.token)
    bulk = data["sendBulkEmail"]["bulkSend"]
    assert bulk["total"] == 1000 and bulk["route"] == "SUB_ACCOUNT" and bulk["status"] == "QUEUED"

    events: list[dict[str, Any]] = []
    async with stack.subscribe(BULK_EVENTS, {"id": bulk["id"]}, token=tenant.token) as queue:
        with worker_process(stack.settings) as worker:
            # Kill it halfway, wherever it happens to be in a delivery.
            while True:
                event = await asyncio.wait_for(queue.get(), timeout=60)
                events.append(event)
                if event["data"]["bulkSendEvents"]["bulkSend"]["sentCount"] >= 400:
                    break
            kill(worker)
        await wait_for_lapsed_claims(stack)
        with worker_process(stack.settings):
            while events[-1]["data"]["bulkSendEvents"]["type"] != "COMPLETED":
                events.append(await asyncio.wait_for(queue.get(), timeout=120))

    final = events[-1]["data"]["bulkSendEvents"]["bulkSend"]
    assert final["total"] == 1000 and final["pendingCount"] == 0 and final["failedCount"] == 0
    assert final["sentCount"] == 1000
    sent_counts = [e["data"]["bulkSendEvents"]["bulkSend"]["sentCount"] for e in events]
    assert sent_counts == sorted(sent_counts) and len(events) > 10  # progress, in order
    received = await stack.sandbox.get("/_sandbox/smtp/messages")
    deliveries = Counter(rcpt for m in received.json() if m["headers"]["subject"] == f"Offer {tag}"
                         for rcpt in m["envelope"]["rcpt_tos"])
    assert set(deliveries) == set(people) and set(deliveries.values()) == {1}
