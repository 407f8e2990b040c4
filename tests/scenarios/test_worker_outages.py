"""``emailsync worker`` lives through its dependencies going away: Redis restarted, Redis
back empty after an outage (seconds, or a minute), PostgreSQL connections dropped. No
manual restart: the same worker process goes on, and the work that arrived meanwhile is
done (the database is the truth; the periodic safety nets re-enqueue what is pending).

Production shape: PostgreSQL, a Redis of the test's own (stopped and started at will),
the API in this process, and an ``emailsync worker`` process serving its /metrics.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from db.models import EmailConnection, Message
from sandbox.server import SandboxServer
from tests.scenarios.conftest import sandbox_server_cleanup
from tests.support.databases import PG_ADMIN_DSN, POSTGRES, fresh_database
from tests.support.flows import SEND, connect_mailbox, sandbox_messages
from tests.support.private_redis import PrivateRedis
from tests.support.sending import SEND as SEND_EMAIL
from tests.support.sending import caught, configure_relay, key, wait_until_sent
from tests.support.stack import Stack, Tenant, free_port, running_stack, worker_process

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
async def outage_stack(sandbox_server: SandboxServer, private_redis: PrivateRedis, tmp_path: Path,
                       encryption_key: str) -> AsyncIterator[Stack]:
    async with fresh_database(POSTGRES, tmp_path) as url:
        try:
            # The tests start the worker themselves; it serves its counters on this port.
            async with running_stack(database_url=url, redis_url=private_redis.url,
                                     sandbox_url=sandbox_server.base_url, ca_file=sandbox_server.ca_file,
                                     encryption_key=encryption_key, separate_worker=False,
                                     worker_metrics_port=free_port()) as stack:
                yield stack
        finally:
            await sandbox_server_cleanup(sandbox_server.base_url, sandbox_server.ca_file)


async def worker_counters(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    """The worker's counters from its /metrics (None while it is not serving yet)."""
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"http://127.0.0.1:{stack.settings.worker_metrics_port}/metrics")).text
    except httpx.TransportError:
        return None
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name.endswith("_total")}


async def counter(stack: Stack, name: str, **labels: str) -> float:
    counters = await worker_counters(stack) or {}
    return sum(value for (sample, sample_labels), value in counters.items()
               if sample == name and set(labels.items()) <= set(sample_labels))


async def wait_for_restart(stack: Stack, worker: subprocess.Popen[bytes]) -> float:
    """Until the worker says it restarted its queue loop (the same process: it never exits)."""
    async def restarted() -> float | None:
        assert worker.poll() is None, "the worker process exited"
        n = await counter(stack, "emailsync_worker_restarts_total")
        return n if n > 0 else None

    return await stack.wait_for(restarted, timeout=30, interval=0.2, what="the worker to restart its queue loop")


async def inbound(stack: Stack, tenant: Tenant, subject: str) -> str:
    response = await stack.sandbox.post(f"/_sandbox/mailboxes/{tenant.user_email}/inbound", json={
        "from": tenant.contact_emails[0], "to": [tenant.user_email], "subject": subject, "text": "hello"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def wait_synced(stack: Stack, tenant: Tenant, subject: str, timeout: float = 30) -> None:
    async def synced() -> bool:
        async with stack.runtime.sessions() as session:
            return bool(await session.scalar(select(func.count(Message.id)).where(
                Message.sub_account_id == tenant.sub_account_id, Message.subject == subject)))

    await stack.wait_for(synced, timeout=timeout, interval=0.2, what=f"{subject!r} in the CRM")


async def connection(stack: Stack, tenant: Tenant) -> EmailConnection:
    async with stack.runtime.sessions() as session:
        conn = await session.scalar(select(EmailConnection).where(EmailConnection.user_id == tenant.user_id,
                                                                 EmailConnection.is_current.is_(True)))
    assert conn is not None
    return conn


async def settled(stack: Stack, tenant: Tenant) -> EmailConnection:
    """The connection once no sync pass is running or pending."""
    async def idle() -> EmailConnection | None:
        conn = await connection(stack, tenant)
        done = conn.last_sync_at and conn.sync_lease_owner is None and conn.sync_done_seq >= conn.sync_requested_seq
        return conn if done else None

    return await stack.wait_for(idle, what="an idle connection")


async def new_tenant(stack: Stack, name: str) -> Tenant:
    return await stack.seed_tenant(name=name, contacts=(f"ann-{uuid.uuid4().hex[:6]}@client.example",))


async def test_a_redis_restart_needs_no_worker_restart(outage_stack: Stack, private_redis: PrivateRedis) -> None:
    stack = outage_stack
    tenant = await new_tenant(stack, "Restart Homes")
    with worker_process(stack.settings) as worker:
        await connect_mailbox(stack, tenant, "OUTLOOK", tenant.user_email)
        await settled(stack, tenant)  # the worker is up: it ran the first sync
        # Redis keeps its data across this restart (saved, then loaded at start).
        subprocess.run(["redis-cli", "-p", str(private_redis.port), "SAVE"], check=True, capture_output=True)
        await asyncio.to_thread(private_redis.restart)
        await wait_for_restart(stack, worker)

        await inbound(stack, tenant, "After the Redis restart")
        await wait_synced(stack, tenant, "After the Redis restart")
        assert worker.poll() is None
        assert await counter(stack, "emailsync_job_runs_total", job="sync_mailbox", outcome="ok") >= 1


@pytest.mark.parametrize("outage_seconds", [pytest.param(1.0, id="restarted-empty"),
                                            pytest.param(60.0, id="unreachable-for-a-minute")])
async def test_work_that_arrived_during_a_redis_outage_is_done_when_it_comes_back_empty(
    outage_stack: Stack, private_redis: PrivateRedis, outage_seconds: float
) -> None:
    stack = outage_stack
    tenant = await new_tenant(stack, "Outage Homes")
    with worker_process(stack.settings) as worker:
        await connect_mailbox(stack, tenant, "OUTLOOK", tenant.user_email)
        before = await settled(stack, tenant)

        await asyncio.to_thread(private_redis.stop)
        down_since = time.monotonic()
        restarts = await wait_for_restart(stack, worker)
        # Mail arrives: the provider's notification is recorded as a sync request, but no
        # job can be queued. A CRM send is committed to the outbox, its job not queued either.
        await inbound(stack, tenant, "Arrived during the outage")

        async def sync_requested() -> bool:
            return (await connection(stack, tenant)).sync_requested_seq > before.sync_requested_seq

        await stack.wait_for(sync_requested, what="the notification's sync request")
        sent = (await stack.graphql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": tenant.contact_emails,
                                                     "subject": "Sent during the outage", "text": "still there?"}},
                                    token=tenant.token))["sendEmail"]
        assert sent["userErrors"] == [] and sent["message"]["status"] == "QUEUED", sent
        # The outage lasts this long (the scenario's parameter); the worker keeps trying.
        await asyncio.sleep(max(0.0, outage_seconds - (time.monotonic() - down_since)))
        assert worker.poll() is None
        assert await counter(stack, "emailsync_worker_restarts_total") >= restarts

        await asyncio.to_thread(private_redis.start)  # empty: every queued job is gone
        await wait_synced(stack, tenant, "Arrived during the outage")

        async def delivered() -> list[dict[str, object]] | None:
            found = [m for m in await sandbox_messages(stack, tenant.user_email, "sent")
                     if m["subject"] == "Sent during the outage"]
            return found or None

        assert len(await stack.wait_for(delivered, timeout=30, what="the send in Sent Items")) == 1
        # And the ordinary path works again: notification -> job -> CRM.
        await inbound(stack, tenant, "After the outage")
        await wait_synced(stack, tenant, "After the outage")
        assert worker.poll() is None
        sent_copies = [m for m in await sandbox_messages(stack, tenant.user_email, "sent")
                       if m["subject"] == "Sent during the outage"]
        assert len(sent_copies) == 1
        # And it still stops cleanly when told to.
        worker.terminate()
        assert await asyncio.to_thread(worker.wait, 10) == 0


async def drop_connections_of(pid: int) -> int:
    """What a PostgreSQL restart or failover does to one process: its backends terminated."""
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = $1) AS dropped", f"emailsync:{pid}")
    finally:
        await admin.close()


async def test_a_send_in_flight_when_redis_restarts_finishes_and_is_sent_once(
    outage_stack: Stack, private_redis: PrivateRedis, sandbox_server: SandboxServer
) -> None:
    """The queue loop fails with Redis, but the job in flight is not cancelled: it gets its
    grace period, so a relay send waiting for the reply to DATA ends SENT, not UNCERTAIN."""
    stack = outage_stack
    contact = f"inflight-{uuid.uuid4().hex[:8]}@client.example"
    tenant = await stack.seed_tenant(name="In Flight", contacts=(contact,))
    assert (await configure_relay(stack, tenant, sandbox_server))["userErrors"] == []
    # The relay stores the email, then holds its "250 OK" back while Redis restarts.
    (await stack.sandbox.post("/_sandbox/smtp/faults", json={"hold_seconds": 8})).raise_for_status()
    try:
        with worker_process(stack.settings) as worker:
            data = await stack.graphql(SEND_EMAIL, {"input": {"to": [contact], "subject": "Through the restart",
                                                          "text": "x", "idempotencyKey": key()}}, token=tenant.token)
            message_id = data["sendEmail"]["message"]["id"]
            assert len(await caught(stack, contact, wait_for=1)) == 1  # in DATA now, its reply held
            await asyncio.to_thread(private_redis.restart)
            await wait_for_restart(stack, worker)
            await wait_until_sent(stack, tenant, message_id, status="SENT")
            assert worker.poll() is None
    finally:
        (await stack.sandbox.delete("/_sandbox/smtp/faults")).raise_for_status()
    assert len(await caught(stack, contact)) == 1


async def test_a_sync_job_with_nothing_requested_calls_no_provider(outage_stack: Stack) -> None:
    """Every enqueue of a sync bumps the request counter first: a job that finds nothing
    pending (a duplicate) returns without a pass."""
    stack = outage_stack
    tenant = await new_tenant(stack, "Duplicate Homes")
    with worker_process(stack.settings):
        await connect_mailbox(stack, tenant, "OUTLOOK", tenant.user_email)
        before = await settled(stack, tenant)
        runs = await counter(stack, "emailsync_job_runs_total", job="sync_mailbox", outcome="ok")
        await stack.sandbox.delete("/_sandbox/requests")
        await stack.runtime.jobs.sync_mailbox(before.id)

        async def ran() -> bool:
            return await counter(stack, "emailsync_job_runs_total", job="sync_mailbox", outcome="ok") > runs

        await stack.wait_for(ran, timeout=30, interval=0.2, what="the duplicate sync job to run")
    log = (await stack.sandbox.get("/_sandbox/requests", params={"mailbox": tenant.user_email})).json()
    assert log == [], [(r["method"], r["path"]) for r in log]
    assert (await connection(stack, tenant)).last_sync_at == before.last_sync_at


async def test_dropped_database_connections_cost_the_worker_nothing(outage_stack: Stack) -> None:
    stack = outage_stack
    tenant = await new_tenant(stack, "Dropped Homes")
    mailbox = tenant.user_email
    with worker_process(stack.settings) as worker:
        await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)
        await settled(stack, tenant)

        # Idle connections dropped: replaced at checkout, no job sees an error.
        failed_or_retried = (await counter(stack, "emailsync_job_runs_total", outcome="retry")
                             + await counter(stack, "emailsync_job_runs_total", outcome="failed"))
        assert await drop_connections_of(worker.pid) >= 1
        await inbound(stack, tenant, "After an idle drop")
        await wait_synced(stack, tenant, "After an idle drop")
        assert (await counter(stack, "emailsync_job_runs_total", outcome="retry")
                + await counter(stack, "emailsync_job_runs_total", outcome="failed")) == failed_or_retried

        # Connections dropped in the middle of an import: the pass resumes, nothing is lost
        # or imported twice, and no job is given up.
        specs = [{"from": tenant.contact_emails[0], "to": [mailbox], "subject": f"Bulk {i}", "text": "x"}
                 for i in range(1500)]
        seeded = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound/bulk", json={"messages": specs})
        assert seeded.status_code == 201, seeded.text
        ids = {m["id"] for m in seeded.json()}
        synced = (await connection(stack, tenant)).messages_synced
        drops = 0
        while drops < 3:
            async def progressed(after: int = synced) -> int | None:
                now = (await connection(stack, tenant)).messages_synced
                return now if now > after else None

            synced = await stack.wait_for(progressed, timeout=60, what="import progress")
            if synced >= 1500:
                break
            if await drop_connections_of(worker.pid):
                drops += 1

        async def imported() -> bool:
            async with stack.runtime.sessions() as session:
                return (await session.scalar(select(func.count(Message.id)).where(
                    Message.sub_account_id == tenant.sub_account_id, Message.provider_message_id.in_(ids)))) == len(ids)

        await stack.wait_for(imported, timeout=90, interval=0.25, what="the whole import")
        async with stack.runtime.sessions() as session:
            copies = dict((await session.execute(
                select(Message.provider_message_id, func.count()).where(Message.sub_account_id == tenant.sub_account_id)
                .group_by(Message.provider_message_id))).all())
        assert {pid for pid in ids if copies.get(pid) != 1} == set()
        assert drops >= 1, "the import finished before any connection was dropped"
        await inbound(stack, tenant, "After the drops")
        await wait_synced(stack, tenant, "After the drops")
        assert worker.poll() is None
        assert await counter(stack, "emailsync_job_runs_total", outcome="failed") == 0
