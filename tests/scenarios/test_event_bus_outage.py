"""Redis goes away and comes back, as a client of the API lives through it.

Production shape (PostgreSQL, Redis for the queue and the event bus). While Redis is
down a CRM send still answers normally (it is committed in the outbox; the queue
being down is no reason to make the client send it again), and a live ``inboxEvents``
subscriber still receives its events (from the event log, which the API polls when the
bus cannot relay); when Redis is back, a worker started then delivers the waiting send
exactly once, and the subscriber hears of it.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from api.types.event import encode_event_cursor
from db.models import Message, OutboxStatus
from tests.support.flows import SEND, connect_mailbox, sandbox_messages
from tests.support.private_redis import PrivateRedis
from tests.support.quiescence import outbox_settled
from tests.support.stack import Stack, worker_process

INBOX_EVENTS = "subscription($after: String) { inboxEvents(after: $after) { type thread { subject } } }"


async def _next_event(events: asyncio.Queue, timeout: float = 20.0) -> dict:  # type: ignore[type-arg]
    payload = await asyncio.wait_for(events.get(), timeout=timeout)
    assert "__end__" not in payload, payload
    return payload["data"]["inboxEvents"]


async def test_redis_outage_loses_no_send_and_tells_subscribers(stack_on_private_redis: Stack,
                                                                 private_redis: PrivateRedis) -> None:
    stack = stack_on_private_redis
    contact = f"ann-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Outage Homes", contacts=(contact,))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)

    async with stack.subscribe(INBOX_EVENTS, {"after": encode_event_cursor(tenant.sub_account_id, 0)}, token=tenant.token) as events:
        await asyncio.to_thread(private_redis.stop)
        data = await stack.graphql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": [contact], "subject": "Sent during the outage",
                                                    "text": "Still there?"}}, token=tenant.token)
        payload = data["sendEmail"]
        assert payload["userErrors"] == [] and payload["message"]["status"] == "QUEUED", payload
        # A sync request is recorded too (the periodic resume_pending_syncs job runs it later).
        sync = (await stack.graphql("mutation { requestSync { emailConnection { status } userErrors { code } } }",
                                    token=tenant.token))["requestSync"]
        assert sync["userErrors"] == [] and sync["emailConnection"]["status"] == "ACTIVE", sync
        # The send's events reach the subscriber with the bus down.
        assert [(await _next_event(events))["type"] for _ in range(2)] == ["THREAD_CREATED", "MESSAGE_ADDED"]

        await asyncio.to_thread(private_redis.start)
        with worker_process(stack.settings):
            # The worker's periodic outbox requeue (run at start-up) finds the waiting send.
            async def in_sent_items():
                found = [m for m in await sandbox_messages(stack, mailbox, "sent")
                         if m["subject"] == "Sent during the outage"]
                return found or None

            assert len(await stack.wait_for(in_sent_items, timeout=30, what="the send in Sent Items")) == 1
            # Live events flow again: the delivery is announced to the same subscriber.
            assert (await _next_event(events))["type"] == "MESSAGE_UPDATED"
            (done,) = await outbox_settled(stack, tenant)  # no attempt left that could deliver it again
            assert done.status == OutboxStatus.DONE, done.status
            sent = [m for m in await sandbox_messages(stack, mailbox, "sent") if m["subject"] == "Sent during the outage"]
            assert len(sent) == 1


async def test_a_sign_in_while_the_queue_is_down_imports_once_it_is_back(stack_on_private_redis: Stack,
                                                                         private_redis: PrivateRedis) -> None:
    stack = stack_on_private_redis
    contact = f"early-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Early Homes", contacts=(contact,))
    mailbox = tenant.user_email
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": "outlook", "address": mailbox, "name": "Owner"})
    waiting = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
        "from": contact, "to": [mailbox], "subject": "Waiting in the inbox", "text": "hello"})
    assert waiting.status_code == 201, waiting.text

    await asyncio.to_thread(private_redis.stop)
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)  # the sign-in itself succeeds
    await asyncio.to_thread(private_redis.start)
    with worker_process(stack.settings):
        async def imported():
            data = await stack.graphql("{ threads(first: 10) { edges { node { subject messageCount } } } }",
                                       token=tenant.token)
            return [e["node"] for e in data["threads"]["edges"]] or None

        # The worker's periodic resume_pending_syncs (run at start-up) runs the first import.
        threads = await stack.wait_for(imported, timeout=30, what="the first import")
        assert threads == [{"subject": "Waiting in the inbox", "messageCount": 1}]


async def test_marking_a_thread_read_while_the_queue_is_down_reaches_the_mailbox_later(
        stack_on_private_redis: Stack, private_redis: PrivateRedis) -> None:
    stack = stack_on_private_redis
    contact = f"unread-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Read Homes", contacts=(contact,))
    mailbox = tenant.user_email
    with worker_process(stack.settings):
        await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)
        arrived = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
            "from": contact, "to": [mailbox], "subject": "Please read me", "text": "hello"})
        assert arrived.status_code == 201, arrived.text

        async def thread_id():
            data = await stack.graphql("{ threads(first: 5) { edges { node { id unreadCount } } } }", token=tenant.token)
            edges = data["threads"]["edges"]
            return edges[0]["node"]["id"] if edges and edges[0]["node"]["unreadCount"] == 1 else None

        tid = await stack.wait_for(thread_id, timeout=30, what="the imported unread thread")

    await asyncio.to_thread(private_redis.stop)
    marked = (await stack.graphql(
        "mutation($id: ID!) { markThreadRead(input: {threadId: $id}) { thread { unreadCount } userErrors { code } } }",
        {"id": tid}, token=tenant.token))["markThreadRead"]
    assert marked == {"thread": {"unreadCount": 0}, "userErrors": []}  # answered, though the queue is down
    await asyncio.to_thread(private_redis.start)

    async def read_in_mailbox():
        found = [m for m in await sandbox_messages(stack, mailbox, "inbox") if m["subject"] == "Please read me"]
        return found if found and found[0]["isRead"] else None

    with worker_process(stack.settings):  # its periodic requeue_read_writebacks runs at start-up
        await stack.wait_for(read_in_mailbox, timeout=30, what="the read state written back to the mailbox")
    data = await stack.graphql("{ threads(first: 5) { edges { node { unreadCount } } } }", token=tenant.token)
    assert data["threads"]["edges"][0]["node"]["unreadCount"] == 0  # no sync pass undid it
    async with stack.runtime.sessions() as session:
        pending = await session.scalars(select(Message.read_writeback_pending)
                                        .where(Message.sub_account_id == tenant.sub_account_id))
        assert list(pending) == [False]  # written back: nothing left for the periodic job
