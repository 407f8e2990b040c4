"""The first two-way thread, end to end, exactly as clients drive it.

connect (OAuth through the sandbox) → sendEmail → the worker sends through the
provider (it lands in Sent Items) → the contact replies → the provider notifies
our webhook → the sync imports the reply into the same thread once → a
``threadEvents`` subscriber receives it → the user answers from the mailbox
itself → that lands in the thread as outbound.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.support.flows import (
    SEND,
    THREAD_EVENTS,
    connect_mailbox,
    sandbox_messages,
    thread_messages,
)
from tests.support.quiescence import sync_caught_up
from tests.support.stack import Stack

CONNECTION_EVENTS = "subscription { emailConnectionEvents { type emailConnection { address status } } }"
PROVIDERS = {"OUTLOOK": ("sent", "inbox"), "GMAIL": ("sent", "inbox")}


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_crm_thread_round_trip(stack: Stack, provider: str) -> None:
    sent_folder, _inbox = PROVIDERS[provider]
    contact = f"ann-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Acme Homes", contacts=(contact,))
    mailbox = tenant.user_email
    async with stack.subscribe(CONNECTION_EVENTS, {}, token=tenant.token) as connection_events:
        await connect_mailbox(stack, tenant, provider, mailbox)
        # The connection's owner hears it become active (published when the sign-in completes).
        event = await asyncio.wait_for(_next_connection_status(connection_events, "ACTIVE"), timeout=20)
        assert event["emailConnection"]["address"].lower() == mailbox.lower()
    # The provider was asked to push changes to us (Graph subscription / Gmail watch).
    async def subscribed():
        path = "/_sandbox/subscriptions" if provider == "OUTLOOK" else "/_sandbox/google/watches"
        subs = (await stack.sandbox.get(path)).json()
        subs = subs if isinstance(subs, list) else subs.get("subscriptions", subs.get("watches", subs.get("value", [])))
        return [s for s in subs if mailbox.lower() in str(s).lower()]

    assert len(await stack.wait_for(subscribed, what="a provider subscription")) == 1

    data = await stack.graphql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": [contact], "subject": "Viewing on Friday", "text": "Does 3pm suit you?"}},
                               token=tenant.token)
    payload = data["sendEmail"]
    assert payload["userErrors"] == []
    thread_id = payload["thread"]["id"]

    async def in_sent_items():
        msgs = [m for m in await sandbox_messages(stack, mailbox, sent_folder) if m["subject"] == "Viewing on Friday"]
        return msgs or None

    sent = (await stack.wait_for(in_sent_items, what="the CRM email in Sent Items"))
    assert len(sent) == 1

    async with stack.subscribe(THREAD_EVENTS, {"id": thread_id}, token=tenant.token) as events:
        reply = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
            "from": {"address": contact, "name": "Ann"}, "to": [mailbox], "subject": "Re: Viewing on Friday",
            "text": "3pm is perfect.", "in_reply_to": sent[0]["internetMessageId"]})
        assert reply.status_code == 201, reply.text
        event = await asyncio.wait_for(_next_added(events, "3pm is perfect."), timeout=20)
        assert event["message"]["direction"] == "INBOUND"

        # The user answers from the mailbox itself (Outlook/Gmail), not from the CRM.
        inbound_id = reply.json()["id"]
        own = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/send", json={
            "to": [contact], "subject": "Re: Viewing on Friday", "text": "See you there.", "reply_to": inbound_id})
        assert own.status_code in (200, 201), own.text
        event = await asyncio.wait_for(_next_added(events, "See you there."), timeout=20)
        assert event["message"]["direction"] == "OUTBOUND"

    async def settled():
        msgs = await thread_messages(stack, tenant, thread_id)
        return msgs if len(msgs) >= 3 and all(m["status"] != "QUEUED" for m in msgs) else None

    await stack.wait_for(settled, what="three messages in the thread")
    await sync_caught_up(stack, tenant)  # a pass after all of it, finished: a duplicate would be in by now
    messages = await thread_messages(stack, tenant, thread_id)
    texts = [(m["text"] or "").strip() for m in messages]
    assert texts.count("Does 3pm suit you?") == 1, texts  # the Sent Items copy was not imported again
    assert texts.count("3pm is perfect.") == 1, texts
    assert texts.count("See you there.") == 1, texts
    assert len(messages) == 3
    assert texts == ["Does 3pm suit you?", "3pm is perfect.", "See you there."], [(m["text"], m["sentAt"]) for m in messages]
    crm = next(m for m in messages if (m["text"] or "").strip() == "Does 3pm suit you?")
    assert crm["origin"] == "CRM" and crm["status"] == "SENT"


async def _next_connection_status(events: asyncio.Queue, status: str) -> dict:
    while True:
        payload = await events.get()
        assert "__end__" not in payload, payload
        event = payload["data"]["emailConnectionEvents"]
        if event["emailConnection"] and event["emailConnection"]["status"] == status:
            return event


async def _next_added(events: asyncio.Queue, text: str) -> dict:
    while True:
        payload = await events.get()
        assert "__end__" not in payload, payload
        event = payload["data"]["threadEvents"]
        if event["type"] == "MESSAGE_ADDED" and event["message"] and (event["message"]["text"] or "").strip() == text:
            return event
