"""A Message-ID shared by several messages hides none of them, through both providers.

The CRM sends an email through the mailbox: its Sent-folder copy is the same message
(adopted, never a second row). A contact's broken mailer then answers with that very
Message-ID as its own, and two contacts' mail share another id (a resend, a reused
corpus): each is synced as its own message. A full resync (the provider's cursor expired)
shows every provider message again: still one CRM message per provider message.

A CRM reply Cc'ing the user's own address comes back into the Inbox as another copy of
that very email: the CRM shows it once (outbound) and reports the copy in "why didn't my
email sync?", rather than showing it twice.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from db.models import EmailConnection, Message
from tests.support.flows import SEND, connect_mailbox, sandbox_messages, thread_messages
from tests.support.stack import Stack, Tenant

SHARED = "<shared-0001@broken-mailer.example>"


@pytest.mark.parametrize("provider", ["OUTLOOK", "GMAIL"])
async def test_a_reused_message_id_hides_no_message(stack: Stack, provider: str) -> None:
    ann, bob = (f"{name}-{uuid.uuid4().hex[:6]}@client.example" for name in ("ann", "bob"))
    tenant = await stack.seed_tenant(name="Reuse", contacts=(ann, bob))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, provider, mailbox)

    sent = await stack.graphql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": [ann],
                                                "subject": "Viewing", "text": "Friday at 3?"}}, token=tenant.token)
    assert sent["sendEmail"]["userErrors"] == [], sent
    thread_id = sent["sendEmail"]["thread"]["id"]

    async def sent_copy_adopted() -> list[dict] | None:
        copies = [m for m in await sandbox_messages(stack, mailbox, "sent") if m["subject"] == "Viewing"]
        ours = await _rows(stack, tenant, [c["id"] for c in copies])
        return copies if copies and ours and all(r.origin == "crm" and r.status == "sent" for r in ours) else None

    [copy] = await stack.wait_for(sent_copy_adopted, timeout=30, what="the Sent copy linked to the CRM message")
    crm_message_id = copy["internetMessageId"]

    inbound = [
        # A broken mailer reuses our Message-ID for the contact's own answer.
        {"from": ann, "subject": "Question", "text": "Is parking included?", "message_id": crm_message_id},
        # Two contacts' mail with one shared id.
        {"from": ann, "subject": "Documents", "text": "Attached are the forms.", "message_id": SHARED},
        {"from": bob, "subject": "Hello", "text": "Bob here.", "message_id": SHARED},
    ]
    arrived = []
    for fields in inbound:
        response = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={"to": [mailbox], **fields})
        assert response.status_code == 201, response.text
        arrived.append(response.json()["id"])

    async def all_synced() -> list[Message] | None:
        rows = await _rows(stack, tenant, arrived)
        return rows if len(rows) == len(arrived) else None

    rows = await stack.wait_for(all_synced, timeout=30, what="each message sharing a Message-ID")
    assert sorted((r.from_email, (r.text or "").strip()) for r in rows) == sorted((f["from"], f["text"]) for f in inbound)
    assert {r.message_id_header for r in rows} == {crm_message_id, SHARED}
    assert all(r.origin == "mailbox" and r.direction == "inbound" for r in rows)

    # Every provider message is listed again (expired cursor -> full resync): no duplicate.
    await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/expire-cursors")
    done_before = (await _connection(stack, tenant)).sync_done_seq
    await stack.graphql("mutation { requestSync { userErrors { code } } }", token=tenant.token)

    async def resynced() -> EmailConnection | None:
        conn = await _connection(stack, tenant)
        idle = conn.sync_lease_owner is None and conn.sync_done_seq >= conn.sync_requested_seq > done_before
        return conn if idle else None

    await stack.wait_for(resynced, timeout=30, what="the full resync")
    async with stack.runtime.sessions() as session:
        total = await session.scalar(select(func.count(Message.id)).where(Message.sub_account_id == tenant.sub_account_id))
    assert total == 1 + len(inbound)
    crm_thread = await thread_messages(stack, tenant, thread_id)
    assert [(m["origin"], m["status"]) for m in crm_thread if m["direction"] == "OUTBOUND"] == [("CRM", "SENT")]


SKIPS = "{ syncSkips { edges { node { reason subject fromEmail } } } }"


@pytest.mark.parametrize("provider", ["OUTLOOK", "GMAIL"])
async def test_the_inbox_copy_of_a_crm_email_to_oneself_is_reported_not_duplicated(stack: Stack, provider: str) -> None:
    ann = f"ann-{uuid.uuid4().hex[:6]}@client.example"
    mailbox = f"user-{uuid.uuid4().hex[:8]}@biz.example"
    # The user keeps their own address as a contact, to copy themselves on emails.
    tenant = await stack.seed_tenant(name="Self copy", contacts=(ann, mailbox), user_email=mailbox)
    await connect_mailbox(stack, tenant, provider, mailbox)

    async def send(subject: str, text: str, **fields: object) -> dict:
        sent = await stack.graphql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": [ann],
                                                    "subject": subject, "text": text, **fields}}, token=tenant.token)
        assert sent["sendEmail"]["userErrors"] == [], sent
        return sent["sendEmail"]

    thread_id = (await send("Viewing", "Friday at 3?"))["thread"]["id"]

    async def outbound_linked(count: int) -> list[dict] | None:
        copies = [m for m in await sandbox_messages(stack, mailbox, "sent") if "Viewing" in m["subject"]]
        ours = await _rows(stack, tenant, [c["id"] for c in copies])
        linked = len(ours) == count and all(r.origin == "crm" and r.status == "sent" for r in ours)
        return copies if linked else None

    await stack.wait_for(lambda: outbound_linked(1), timeout=30, what="the first Sent copy linked")
    # A reply in the CRM thread, copied to the user's own mailbox: its Inbox copy is in the
    # same conversation as the thread.
    await send("Re: Viewing", "Copy for my records.", threadId=thread_id, cc=[mailbox])
    await stack.wait_for(lambda: outbound_linked(2), timeout=30, what="the reply's Sent copy linked")

    async def copy_reported() -> list[dict] | None:
        edges = (await stack.graphql(SKIPS, token=tenant.token))["syncSkips"]["edges"]
        return [e["node"] for e in edges] or None

    skips = await stack.wait_for(copy_reported, timeout=30, what="the Inbox copy reported as a sync skip")
    assert [(s["reason"], s["subject"], s["fromEmail"].lower()) for s in skips] == [
        ("copy_of_crm_send", "Re: Viewing", mailbox)]
    [inbox_copy] = [m for m in await sandbox_messages(stack, mailbox, "inbox") if m["subject"] == "Re: Viewing"]
    assert await _rows(stack, tenant, [inbox_copy["id"]]) == []
    messages = await thread_messages(stack, tenant, thread_id)
    assert sorted((m["direction"], m["origin"], m["text"].strip()) for m in messages) == [
        ("OUTBOUND", "CRM", "Copy for my records."), ("OUTBOUND", "CRM", "Friday at 3?")]


async def _rows(stack: Stack, tenant: Tenant, provider_ids: list[str]) -> list[Message]:
    async with stack.runtime.sessions() as session:
        return list(await session.scalars(select(Message).where(Message.sub_account_id == tenant.sub_account_id,
                                                                Message.provider_message_id.in_(provider_ids))))


async def _connection(stack: Stack, tenant: Tenant) -> EmailConnection:
    async with stack.runtime.sessions() as session:
        conn = await session.scalar(select(EmailConnection).where(EmailConnection.user_id == tenant.user_id,
                                                                 EmailConnection.is_current.is_(True)))
        assert conn is not None
        return conn
