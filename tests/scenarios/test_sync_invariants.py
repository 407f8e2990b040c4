"""DESIGN.md section 3 invariants on the Outlook path, each shown failing-capable end to end."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from db.models import ConnectionStatus, EmailConnection, Message, OutboxItem, OutboxStatus, Thread
from tests.support.flows import SEND, connect_mailbox, sandbox_messages
from tests.support.quiescence import current_connection, outbox_settled, sync_caught_up, sync_settled
from tests.support.stack import Stack, Tenant


async def _connected(stack: Stack, *, labs: bool = True, contacts: int = 1) -> tuple[Tenant, list[str]]:
    people = [f"c{i}-{uuid.uuid4().hex[:6]}@client.example" for i in range(contacts)]
    tenant = await stack.seed_tenant(name="Invariants", labs=labs, contacts=tuple(people))
    await connect_mailbox(stack, tenant, "OUTLOOK", tenant.user_email)
    return tenant, people


async def _settled_connection(stack: Stack, tenant: Tenant) -> EmailConnection:
    """The connection once its watch exists and no sync pass is running or pending."""
    conn = await sync_settled(stack, (await current_connection(stack, tenant)).id, watching=True)
    assert conn.watch_id, "a Graph subscription id"
    return conn


async def _count_messages(stack: Stack, tenant: Tenant) -> int:
    async with stack.runtime.sessions() as session:
        return await session.scalar(select(func.count(Message.id)).where(Message.sub_account_id == tenant.sub_account_id))


async def test_outbox_row_is_committed_before_the_provider_call_and_a_retry_sends_once(stack: Stack) -> None:
    tenant, (contact,) = await _connected(stack)
    # The first provider call of the send (creating the draft) fails.
    await stack.sandbox.post("/_sandbox/faults", json={"path": "/v1.0/me/messages$", "method": "POST", "status": 500, "count": 1})
    data = await stack.graphql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": [contact], "subject": "Outbox first", "text": "body"}}, token=tenant.token)
    assert data["sendEmail"]["userErrors"] == []

    async def attempted_and_failed():
        async with stack.runtime.sessions() as session:
            item = await session.scalar(select(OutboxItem).where(OutboxItem.sub_account_id == tenant.sub_account_id))
            return item if item is not None and item.attempts >= 1 and item.last_error else None

    item = await stack.wait_for(attempted_and_failed, what="a failed first attempt")
    async with stack.runtime.sessions() as session:
        # Thread, message and outbox row were durable while the provider refused the send.
        message = await session.get(Message, item.message_id)
        assert message is not None and message.status == "queued"
        assert await session.get(Thread, message.thread_id) is not None
    log = (await stack.sandbox.get("/_sandbox/requests", params={"path": "/me/messages"})).json()
    assert any(r["status"] == 500 for r in log)

    async def sent_once():
        copies = [m for m in await sandbox_messages(stack, tenant.user_email, "sent") if m["subject"] == "Outbox first"]
        return copies or None

    await stack.wait_for(sent_once, timeout=30, what="the retried send")
    (done,) = await outbox_settled(stack, tenant)  # no attempt left that could send again
    assert done.status == OutboxStatus.DONE, done.status
    copies = [m for m in await sandbox_messages(stack, tenant.user_email, "sent") if m["subject"] == "Outbox first"]
    assert len(copies) == 1


@pytest.mark.stack_settings(graph_page_size=10)
async def test_cursor_commits_with_its_page_and_a_failed_pass_resumes_without_loss_or_duplicates(stack: Stack) -> None:
    contact = f"bulk-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Resume", contacts=(contact,))
    mailbox = tenant.user_email
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": "outlook", "address": mailbox, "name": "Owner"})
    specs = [{"from": contact, "to": [mailbox], "subject": f"Listing {i}", "text": f"message {i}"} for i in range(25)]
    assert (await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound/bulk", json={"messages": specs})).status_code == 201
    # The second page of the Inbox delta fails once: the first page must already be committed with its cursor.
    await stack.sandbox.post("/_sandbox/faults", json={"path": "skiptoken", "method": "GET", "status": 500, "count": 1})
    await stack.sandbox.delete("/_sandbox/requests")
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)

    async def fault_hit():
        return [r for r in (await stack.sandbox.get("/_sandbox/requests")).json() if r["status"] == 500] or None

    await stack.wait_for(fault_hit, what="the injected failure")

    async def failed_pass():
        # The second page is fetched while the first is written; its failure surfaces, and
        # ends the pass, only once the first page is committed (the retry comes 2 s later).
        conn = await current_connection(stack, tenant)
        return conn if conn.status == ConnectionStatus.ERROR else None

    conn = await stack.wait_for(failed_pass, what="the pass that met the failure to end")
    after_failure = await _count_messages(stack, tenant)
    assert after_failure == 10, after_failure
    assert "skiptoken" in json.dumps(conn.cursor), conn.cursor  # resume point stored with the 10 messages

    async def all_imported():
        return (await _count_messages(stack, tenant)) >= 25 or None

    await stack.wait_for(all_imported, timeout=30, what="the resumed import")
    await sync_settled(stack, conn.id)  # the resumed pass is over: a duplicate or a new round would be in
    async with stack.runtime.sessions() as session:
        subjects = list(await session.scalars(select(Message.subject).where(Message.sub_account_id == tenant.sub_account_id)))
    assert sorted(subjects) == sorted(f"Listing {i}" for i in range(25))
    # The retry went on from the stored nextLink instead of starting the folder again.
    inbox_rounds = [r for r in (await stack.sandbox.get("/_sandbox/requests", params={"path": "delta"})).json()
                    if "inbox" in r["path"].lower() and "token" not in r["query"]]
    assert len(inbox_rounds) == 1, inbox_rounds


async def test_replayed_delta_page_does_not_duplicate(stack: Stack) -> None:
    tenant, (contact,) = await _connected(stack)
    mailbox = tenant.user_email
    await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={"from": contact, "to": [mailbox],
                                                                             "subject": "First", "text": "one"})
    await stack.wait_for(lambda: _count_messages(stack, tenant), what="the first message")
    await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/replay-next-delta")
    await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={"from": contact, "to": [mailbox],
                                                                             "subject": "Second", "text": "two"})

    async def two():
        return (await _count_messages(stack, tenant)) >= 2 or None

    await stack.wait_for(two, what="the second message")
    await sync_caught_up(stack, tenant)  # one more pass over the replayed page, observed to finish
    async with stack.runtime.sessions() as session:
        subjects = sorted(await session.scalars(select(Message.subject).where(Message.sub_account_id == tenant.sub_account_id)))
    assert subjects == ["First", "Second"]


async def test_webhook_with_wrong_client_state_is_refused_and_changes_nothing(stack: Stack) -> None:
    tenant, _ = await _connected(stack)
    conn = await _settled_connection(stack, tenant)
    body = {"value": [{"subscriptionId": conn.watch_id, "clientState": "not-the-secret", "changeType": "created",
                       "resource": "Users/x/Messages/y", "resourceData": {"id": "y"}, "tenantId": "t",
                       "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z"}]}
    response = await stack.http.post("/webhooks/graph", json=body)
    assert response.status_code in (400, 401, 403)
    after = await current_connection(stack, tenant)
    assert after.sync_requested_seq == conn.sync_requested_seq

    handshake = await stack.http.post("/webhooks/graph", params={"validationToken": "Validation: token 123"})
    assert handshake.status_code == 200
    assert handshake.headers["content-type"].startswith("text/plain")
    assert handshake.text == "Validation: token 123"


async def test_tokens_are_encrypted_at_rest_and_never_served_or_logged(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    tenant, _ = await _connected(stack)
    conn = await current_connection(stack, tenant)
    tokens = stack.runtime.secrets.decrypt_tokens(conn.token_ciphertext)
    secrets = [tokens.access_token, tokens.refresh_token]
    assert all(s and len(s) > 10 for s in secrets)
    assert not any(s in conn.token_ciphertext for s in secrets)
    served = json.dumps(await stack.graphql(
        "{ emailConnection { id provider address status statusDetail } emailConnections { id address } }",
        token=tenant.token))
    assert not any(s in served or conn.token_ciphertext in served for s in secrets)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(s in logged for s in secrets)


async def test_one_sub_account_cannot_read_another_s_threads(stack: Stack) -> None:
    owner, (contact,) = await _connected(stack)
    data = await stack.graphql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": [contact], "subject": "Private", "text": "secret"}}, token=owner.token)
    thread_id = data["sendEmail"]["thread"]["id"]
    other = await stack.seed_tenant(name="Other business", contacts=(contact,))
    seen = await stack.graphql("query($id: ID!) { thread(id: $id) { id subject } node(id: $id) { id } threads(first: 10) { edges { node { id } } } }",
                               {"id": thread_id}, token=other.token)
    assert seen["thread"] is None and seen["node"] is None
    assert seen["threads"]["edges"] == []
    reply = await stack.graphql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": [contact], "subject": "x", "text": "y", "threadId": thread_id}},
                                token=other.token)
    assert reply["sendEmail"]["userErrors"][0]["code"] == "NOT_FOUND"
