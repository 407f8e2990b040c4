"""Product rules end to end on Outlook: auto-BCC, attachments and sync skips, disconnect."""

from __future__ import annotations

import base64
import uuid

from sqlalchemy import select

from db.models import Contact, EmailConnection, Message
from tests.support.flows import connect_mailbox
from tests.support.quiescence import current_connection, sync_caught_up, sync_settled
from tests.support.stack import Stack

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
SKIPS = "{ syncSkips(first: 20) { edges { node { reason detail subject fromEmail } } } }"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _messages(stack: Stack, sub_account_id) -> list[Message]:  # type: ignore[no-untyped-def]
    async with stack.runtime.sessions() as session:
        return list(await session.scalars(select(Message).where(Message.sub_account_id == sub_account_id)))


async def test_auto_bcc_makes_a_contact_and_the_reply_joins_in_the_same_import(stack: Stack) -> None:
    tenant = await stack.seed_tenant(name="BCC", contacts=())
    mailbox, newcomer = tenant.user_email, f"new-{uuid.uuid4().hex[:6]}@client.example"
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": "outlook", "address": mailbox, "name": "Owner"})
    sent = (await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/send", json={
        "to": [newcomer], "bcc": [tenant.bcc_address], "subject": "Your offer", "text": "Here it is."})).json()
    await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
        "from": newcomer, "to": [mailbox], "subject": "Re: Your offer", "text": "Thanks!",
        "in_reply_to": sent["internetMessageId"]})
    # Unrelated mail from a stranger stays out.
    await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
        "from": "stranger@else.example", "to": [mailbox], "subject": "Hello", "text": "spam"})
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)

    async def both():
        rows = await _messages(stack, tenant.sub_account_id)
        return rows if len(rows) >= 2 else None

    await stack.wait_for(both, what="the BCC'd thread")
    # Everything was in the mailbox before the sign-in: once the import is over, nothing else comes.
    await sync_settled(stack, (await current_connection(stack, tenant)).id, watching=True)
    rows = await _messages(stack, tenant.sub_account_id)
    assert sorted(m.subject for m in rows) == ["Re: Your offer", "Your offer"]
    assert len({m.thread_id for m in rows}) == 1
    async with stack.runtime.sessions() as session:
        contacts = list(await session.scalars(select(Contact.email).where(Contact.sub_account_id == tenant.sub_account_id)))
    assert contacts == [newcomer]


async def test_attachments_sync_by_content_and_refused_ones_become_visible_skips(stack: Stack) -> None:
    contact = f"docs-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Attachments", contacts=(contact,))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)
    await stack.sandbox.delete("/_sandbox/requests")

    def mail(subject: str, name: str, data: bytes, sender: str = contact) -> dict:
        return {"from": sender, "to": [mailbox], "subject": subject, "text": "see attached",
                "attachments": [{"filename": name, "content_type": "application/octet-stream", "content_base64": _b64(data)}]}

    for body in (mail("Contract", "contract.pdf", PDF), mail("Tool", "setup.exe", b"MZ\x90\x00"),
                 mail("Fake", "invoice.pdf", b"MZ\x90\x00not a pdf"), mail("Other", "x.pdf", PDF, "nobody@else.example")):
        assert (await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json=body)).status_code == 201

    async def two_skips():
        edges = (await stack.graphql(SKIPS, token=tenant.token))["syncSkips"]["edges"]
        return edges if len(edges) >= 2 else None

    skips = {e["node"]["subject"]: e["node"] for e in await stack.wait_for(two_skips, what="two sync skips")}
    assert skips["Tool"]["reason"] == "attachment_type_not_allowed" and skips["Tool"]["fromEmail"] == contact
    assert skips["Fake"]["reason"] == "attachment_content_mismatch"
    rows = await _messages(stack, tenant.sub_account_id)
    assert [m.subject for m in rows] == ["Contract"]
    thread = await stack.graphql("query($id: ID!) { thread(id: $id) { messages(first: 5) { edges { node { attachments { filename size } } } } } }",
                                 {"id": _global_thread_id(rows[0].thread_id)}, token=tenant.token)
    (edge,) = thread["thread"]["messages"]["edges"]
    assert edge["node"]["attachments"] == [{"filename": "contract.pdf", "size": len(PDF)}]
    # Nothing is downloaded for mail that does not sync (the stranger's PDF, the refused .exe).
    downloads = (await stack.sandbox.get("/_sandbox/requests", params={"path": "/attachments/"})).json()
    assert len(downloads) == 2, downloads  # the contract, and the fake PDF that had to be checked by content


async def test_disconnect_stops_sync_deletes_the_subscription_and_erases_tokens(stack: Stack) -> None:
    contact = f"bye-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Disconnect", contacts=(contact,))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)

    async def subscribed():
        subs = (await stack.sandbox.get("/_sandbox/subscriptions")).json()
        return [s for s in subs if mailbox.lower() in str(s).lower()] or None

    await stack.wait_for(subscribed, what="a subscription")
    data = await stack.graphql("mutation { disconnectEmailConnection { emailConnection { status } userErrors { code } } }",
                               token=tenant.token)
    assert data["disconnectEmailConnection"]["emailConnection"]["status"] == "DISCONNECTED"
    # The Graph subscription is deleted: by the disconnect itself, or, when the disconnect
    # lands while the worker is still registering it, by the worker right after.
    async def unsubscribed() -> bool:
        subs = (await stack.sandbox.get("/_sandbox/subscriptions")).json()
        return not [s for s in subs if mailbox.lower() in str(s).lower()]

    await stack.wait_for(unsubscribed, what="the Graph subscription to be deleted")
    async with stack.runtime.sessions() as session:
        conn = await session.scalar(select(EmailConnection).where(EmailConnection.user_id == tenant.user_id))
        assert conn.token_ciphertext is None and conn.watch_id is None and not conn.is_current
    await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={"from": contact, "to": [mailbox],
                                                                             "subject": "After", "text": "late"})
    # No pass can start for a disconnected mailbox: once none runs, nothing more is imported.
    await sync_settled(stack, conn.id)
    assert await _messages(stack, tenant.sub_account_id) == []


def _global_thread_id(thread_id) -> str:  # type: ignore[no-untyped-def]
    from api.ids import to_global_id

    return to_global_id("Thread", thread_id)


async def test_reconnecting_the_same_mailbox_keeps_one_copy_of_each_thread(stack: Stack) -> None:
    contact = f"again-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Reconnect", contacts=(contact,))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)
    first = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
        "from": contact, "to": [mailbox], "subject": "Before", "text": "first words"})
    assert first.status_code == 201, first.text

    async def imported(subject: str):  # type: ignore[no-untyped-def]
        found = [m for m in await _messages(stack, tenant.sub_account_id) if m.subject == subject]
        return found or None

    await stack.wait_for(lambda: imported("Before"), what="the first message")
    data = await stack.graphql("mutation { disconnectEmailConnection { emailConnection { status } userErrors { code } } }",
                               token=tenant.token)
    assert data["disconnectEmailConnection"]["userErrors"] == []

    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)  # the same mailbox, a new connection
    reply = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
        "from": contact, "to": [mailbox], "subject": "Re: Before", "text": "second words",
        "in_reply_to": first.json()["internetMessageId"]})
    assert reply.status_code == 201, reply.text
    await stack.wait_for(lambda: imported("Re: Before"), what="the reply after reconnecting")
    await sync_caught_up(stack, tenant)  # the new connection's full sync is over: a second copy would be here

    messages = await _messages(stack, tenant.sub_account_id)
    assert sorted(m.subject for m in messages) == ["Before", "Re: Before"]  # one copy each
    assert len({m.thread_id for m in messages}) == 1  # the reply joined the old thread
    async with stack.runtime.sessions() as session:
        current = await session.scalar(select(EmailConnection).where(EmailConnection.user_id == tenant.user_id,
                                                                     EmailConnection.is_current.is_(True)))
    assert {m.connection_id for m in messages} == {current.id}  # the old mail now belongs to it
