"""A subscriber that went away resumes from its cursor: exactly what it missed, in order, then live.

Production shape (PostgreSQL; Redis as queue and event bus, on a Redis of the test's own
so it can be stopped). No worker runs: the changes are CRM sends, each one event
(``MESSAGE_ADDED``) written with the send itself.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import update

from api.types.event import encode_event_cursor
from db.models import EventCounter
from tests.support.flows import SEND, connect_mailbox
from tests.support.private_redis import PrivateRedis
from tests.support.sending import SEND_BULK
from tests.support.stack import Stack, Tenant

INBOX_EVENTS = """subscription($after: String) { inboxEvents(after: $after) {
  type cursor thread { id } message { id subject } } }"""
CONNECTION_EVENTS = "subscription($after: String) { emailConnectionEvents(after: $after) { type cursor } }"


async def _next(events: asyncio.Queue[dict[str, Any]], field: str = "inboxEvents",
                timeout: float = 30.0) -> dict[str, Any]:
    payload = await asyncio.wait_for(events.get(), timeout=timeout)
    assert "__end__" not in payload and not payload.get("errors"), payload
    return payload["data"][field]


async def _send(stack: Stack, tenant: Tenant, contact: str, subject: str, thread_id: str | None = None) -> dict[str, Any]:
    data = await stack.graphql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": [contact], "subject": subject,
                                                "text": subject, "threadId": thread_id}}, token=tenant.token)
    assert data["sendEmail"]["userErrors"] == [], data
    return data["sendEmail"]


async def test_a_reconnecting_subscriber_gets_exactly_what_it_missed(stack_on_private_redis: Stack,
                                                                     private_redis: PrivateRedis) -> None:
    stack = stack_on_private_redis
    contact = f"ann-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Replay Homes", contacts=(contact,))
    await connect_mailbox(stack, tenant, "OUTLOOK", tenant.user_email)

    # From the start of the sub-account's log, so the first send is seen however soon it commits.
    async with stack.subscribe(INBOX_EVENTS, {"after": encode_event_cursor(tenant.sub_account_id, 0)}, token=tenant.token) as events:
        first = await _send(stack, tenant, contact, "First")
        created = await _next(events)
        assert created["type"] == "THREAD_CREATED" and created["thread"]["id"] == first["thread"]["id"], created
        added = await _next(events)
        assert added["type"] == "MESSAGE_ADDED" and added["message"]["id"] == first["message"]["id"]
        cursor = added["cursor"]
    thread_id = first["thread"]["id"]

    # Away: 50 changes, the last 25 while Redis (queue and bus) is down.
    sent = [await _send(stack, tenant, contact, f"Reply {n}", thread_id) for n in range(25)]
    await asyncio.to_thread(private_redis.stop)
    sent += [await _send(stack, tenant, contact, f"Reply {n}", thread_id) for n in range(25, 50)]

    # Back, still during the outage: the 50 come from the log, in order, each once.
    async with stack.subscribe(INBOX_EVENTS, {"after": cursor}, token=tenant.token) as events:
        replayed = [await _next(events) for _ in range(50)]
        assert [e["type"] for e in replayed] == ["MESSAGE_ADDED"] * 50
        assert [e["message"]["id"] for e in replayed] == [s["message"]["id"] for s in sent]
        assert [e["message"]["subject"] for e in replayed] == [f"Reply {n}" for n in range(50)]
        assert len({e["cursor"] for e in replayed}) == 50

        # Then live, with Redis still down (the log poll) and after it is back (the bus): each once.
        during = await _send(stack, tenant, contact, "During the outage", thread_id)
        assert (await _next(events))["message"]["id"] == during["message"]["id"]
        await asyncio.to_thread(private_redis.start)
        after = await _send(stack, tenant, contact, "After the outage", thread_id)
        assert (await _next(events))["message"]["id"] == after["message"]["id"]
        last = replayed[-1]["cursor"]

    # The cursor of any event resumes right after it.
    async with stack.subscribe(INBOX_EVENTS, {"after": last}, token=tenant.token) as events:
        assert [(await _next(events))["message"]["id"] for _ in range(2)] == [during["message"]["id"],
                                                                                after["message"]["id"]]
        marker = await _send(stack, tenant, contact, "Marker", thread_id)
        assert (await _next(events))["message"]["id"] == marker["message"]["id"]  # nothing in between


async def test_a_cursor_older_than_the_retention_is_told_events_missed(stack_on_private_redis: Stack) -> None:
    stack = stack_on_private_redis
    contact = f"bob-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Retention Homes", contacts=(contact,))
    async with stack.subscribe(CONNECTION_EVENTS, {"after": None}, token=tenant.token) as events:
        await connect_mailbox(stack, tenant, "OUTLOOK", tenant.user_email)
        first = await _next(events, "emailConnectionEvents")
        assert first["type"] == "CONNECTION_CHANGED"
    await stack.graphql("mutation { disconnectEmailConnection { userErrors { code } } }", token=tenant.token)
    # The log was cut past that event (what the retention purge records).
    async with stack.runtime.sessions.begin() as session:
        await session.execute(update(EventCounter).where(EventCounter.sub_account_id == tenant.sub_account_id)
                              .values(purged_through=EventCounter.last_seq))
    async with stack.subscribe(CONNECTION_EVENTS, {"after": first["cursor"]}, token=tenant.token) as events:
        missed = await _next(events, "emailConnectionEvents")
        assert missed["type"] == "EVENTS_MISSED" and missed["cursor"] != first["cursor"]
    # A cursor that is not one is refused, with the code a client can act on.
    async with stack.subscribe(CONNECTION_EVENTS, {"after": "nonsense"}, token=tenant.token) as events:
        refused = await asyncio.wait_for(events.get(), timeout=30)
        assert refused["__end__"]["type"] == "error", refused
        assert refused["__end__"]["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_bulk_email_announces_each_thread_it_starts(stack_on_private_redis: Stack) -> None:
    stack = stack_on_private_redis
    contacts = tuple(f"bulk-{n}-{uuid.uuid4().hex[:6]}@client.example" for n in range(3))
    tenant = await stack.seed_tenant(name="Bulk Homes", contacts=contacts)
    await connect_mailbox(stack, tenant, "OUTLOOK", tenant.user_email)
    data = await stack.graphql(SEND_BULK, {"input": {"idempotencyKey": str(uuid.uuid4()), "recipients": list(contacts),
                                                     "from": tenant.user_email, "subject": "News", "text": "hello"}},
                               token=tenant.token)
    assert data["sendBulkEmail"]["userErrors"] == [], data
    async with stack.subscribe(INBOX_EVENTS, {"after": encode_event_cursor(tenant.sub_account_id, 0)},
                               token=tenant.token) as events:
        replayed = [await _next(events) for _ in range(6)]
    assert sorted(e["type"] for e in replayed) == ["MESSAGE_ADDED"] * 3 + ["THREAD_CREATED"] * 3
    assert len({e["thread"]["id"] for e in replayed}) == 3
