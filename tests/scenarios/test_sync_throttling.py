"""Sync passes and the mailbox lease, end to end against the sandbox's Graph:

- A throttled pass (429 with a Retry-After too long to sleep through in process) leaves
  the mailbox blocked until the retry time: neither the resume safety net (every 10 s)
  nor another job calls the provider before it allows, and the mail comes in after.
- A pass whose lease was taken over stops at once (its heartbeat finds out), instead of
  finishing the page it is building and downloading its attachments for nothing.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from db.base import utcnow
from db.models import EmailConnection, Message
from tests.support.flows import connect_mailbox
from tests.support.stack import Stack, Tenant

# Longer than the Graph client sleeps through in process (30 s), so the pass is deferred;
# and longer than the resume safety net's period (10 s), which must not cut it short.
RETRY_AFTER = 35
LEASE_SECONDS = 2.0
SLOW_PAGE_SECONDS = 12.0
# A message's attachment list (Graph: GET .../messages/{id}/attachments?$select=...), not a file.
ATTACHMENT_LIST = r"/attachments(\?|$)"
REQUEST_SYNC = "mutation { requestSync { userErrors { code } } }"


async def _connection(stack: Stack, tenant: Tenant) -> EmailConnection:
    async with stack.runtime.sessions() as session:
        conn = await session.scalar(select(EmailConnection).where(EmailConnection.user_id == tenant.user_id,
                                                                 EmailConnection.is_current.is_(True)))
    assert conn is not None
    return conn


async def _idle(stack: Stack, tenant: Tenant) -> EmailConnection:
    async def idle() -> EmailConnection | None:
        conn = await _connection(stack, tenant)
        done = conn.last_sync_at and conn.sync_lease_owner is None and conn.sync_done_seq >= conn.sync_requested_seq
        return conn if done else None

    return await stack.wait_for(idle, timeout=30, what="an idle connection")


async def _imported(stack: Stack, tenant: Tenant, subject: str, timeout: float) -> None:
    async def found() -> bool:
        async with stack.runtime.sessions() as session:
            return bool(await session.scalar(select(func.count(Message.id)).where(
                Message.sub_account_id == tenant.sub_account_id, Message.subject == subject)))

    await stack.wait_for(found, timeout=timeout, interval=0.2, what=f"{subject!r} in the CRM")


def _time(entry: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00"))


async def test_a_throttled_sync_waits_for_retry_after(stack: Stack) -> None:
    contact = f"busy-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Throttled", contacts=(contact,))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)
    await _idle(stack, tenant)
    fault = await stack.sandbox.post("/_sandbox/faults", json={"path": "delta", "method": "GET", "status": 429,
                                                               "retry_after": str(RETRY_AFTER), "count": 1})
    assert fault.status_code == 201, fault.text
    await stack.sandbox.delete("/_sandbox/requests")
    response = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
        "from": contact, "to": [mailbox], "subject": "Pending while throttled", "text": "hello"})
    assert response.status_code == 201, response.text
    await stack.graphql(REQUEST_SYNC, token=tenant.token)

    await _imported(stack, tenant, "Pending while throttled", timeout=RETRY_AFTER + 40)
    log = (await stack.sandbox.get("/_sandbox/requests", params={"path": "delta"})).json()
    throttled = [r for r in log if r["status"] == 429]
    assert len(throttled) == 1, log
    later = [r for r in log if r["mailbox"] == mailbox and _time(r) > _time(throttled[0])]
    assert later, log
    # Not one call to the mailbox's delta before the provider allowed it (the 429's log
    # time is when it was answered; the worker read it after).
    first = min(_time(r) for r in later)
    assert first - _time(throttled[0]) >= timedelta(seconds=RETRY_AFTER - 0.5), (throttled, later)


@pytest.mark.stack_settings(sync_lease_seconds=LEASE_SECONDS)
async def test_a_pass_that_lost_its_lease_stops_at_once(stack: Stack) -> None:
    contact = f"taken-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Taken Over", contacts=(contact,))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)
    conn = await _idle(stack, tenant)
    # The new message's attachment list answers slowly; then its file is to be downloaded.
    fault = await stack.sandbox.post("/_sandbox/faults", json={"path": ATTACHMENT_LIST, "method": "GET", "status": 0,
                                                               "delay_ms": int(SLOW_PAGE_SECONDS * 1000), "count": 1})
    assert fault.status_code == 201, fault.text
    fault_id = fault.json()["id"]
    await stack.sandbox.delete("/_sandbox/requests")
    pdf = base64.b64encode(b"%PDF-1.4\n%taken over\n").decode()
    response = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
        "from": contact, "to": [mailbox], "subject": "With a file", "text": "see attached",
        "attachments": [{"filename": "offer.pdf", "content_type": "application/pdf", "content_base64": pdf}]})
    assert response.status_code == 201, response.text
    await stack.graphql(REQUEST_SYNC, token=tenant.token)

    async def slow_page_started() -> bool:
        return all(f["id"] != fault_id for f in (await stack.sandbox.get("/_sandbox/faults")).json())

    await stack.wait_for(slow_page_started, timeout=30, interval=0.1, what="the pass to ask for the slow list")
    # Another worker takes the mailbox over (as after a long stall of this one).
    async with stack.runtime.sessions.begin() as session:
        await session.execute(update(EmailConnection).where(EmailConnection.id == conn.id)
                              .values(sync_lease_owner="another-worker", sync_lease_until=utcnow() + timedelta(minutes=10)))

    async def slow_list_answered() -> bool:
        log = (await stack.sandbox.get("/_sandbox/requests", params={"path": "/attachments"})).json()
        return any(r["durationMs"] >= SLOW_PAGE_SECONDS * 1000 for r in log)

    await stack.wait_for(slow_list_answered, timeout=SLOW_PAGE_SECONDS + 30, interval=0.2, what="the slow list")
    # The other worker goes away; the resume safety net starts a pass that imports the mail.
    async with stack.runtime.sessions.begin() as session:
        await session.execute(update(EmailConnection).where(EmailConnection.id == conn.id)
                              .values(sync_lease_owner=None, sync_lease_until=None))
    await _imported(stack, tenant, "With a file", timeout=40)

    log = (await stack.sandbox.get("/_sandbox/requests", params={"mailbox": mailbox, "path": "/attachments/"})).json()
    # Downloaded once, by the pass that imported it: the one taken over stopped at once.
    assert len(log) == 1, [(r["time"], r["path"]) for r in log]
