"""DESIGN.md rule 10 end to end: every route driven over GraphQL, and checked where the
email actually arrived (the sandbox mailbox's Sent folder, or the SMTP catcher) and
whether it synced. Runs on SQLite + embedded queue and on PostgreSQL + Redis + worker."""

from __future__ import annotations

import uuid

import pytest

from api.ids import to_global_id
from sandbox.server import SandboxServer
from tests.support.flows import THREAD, connect_mailbox, sandbox_messages
from tests.support.sending import (
    BULK,
    RESOLVE,
    RULES,
    SEND,
    SEND_BULK,
    SEND_WORKFLOW,
    caught,
    configure_relay,
    key,
    parsed,
    wait_until_sent,
)
from tests.support.stack import Stack

CREATE_KEY = """mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { key userErrors { code } } }"""


def contacts(n: int) -> tuple[str, ...]:
    tag = uuid.uuid4().hex[:8]
    return tuple(f"client{i}-{tag}@client.example" for i in range(n))


async def sent_subjects(stack: Stack, mailbox: str) -> list[str]:
    return [m["subject"] for m in await sandbox_messages(stack, mailbox, "sent")]


async def test_each_route_lands_where_the_mapping_says(stack: Stack, sandbox_server: SandboxServer) -> None:
    people = contacts(4)
    tenant = await stack.seed_tenant(name="Routes", contacts=people)
    mailbox = f"agent-{uuid.uuid4().hex[:8]}@demo-realty.example"
    relay = await configure_relay(stack, tenant, sandbox_server)
    assert relay["userErrors"] == [] and relay["provider"]["hasPassword"] is True

    # No mailbox yet: an individual email falls back to the sub-account provider.
    rules = (await stack.graphql(RULES, token=tenant.token))["senderDomainRules"]
    assert rules["mailboxAddress"] is None and rules["provider"]["fromEmail"] == "news@relay-biz.example"
    assert [(r["kind"], r["route"], r["reason"], r["available"]) for r in rules["rules"]] == [
        ("INDIVIDUAL", "SUB_ACCOUNT", "INDIVIDUAL_NO_MAILBOX", True),
        ("BULK", "SUB_ACCOUNT", "BULK_FROM_BLANK", True),
        ("WORKFLOW", "SUB_ACCOUNT", "WORKFLOW_ALWAYS_SUB_ACCOUNT", True),
    ]
    data = await stack.graphql(SEND, {"input": {"to": [people[0]], "subject": "Before the mailbox", "text": "hi",
                                                "idempotencyKey": key()}}, token=tenant.token)
    sent = data["sendEmail"]
    assert sent["userErrors"] == [] and sent["message"]["route"] == "SUB_ACCOUNT"
    assert sent["message"]["routeReason"] == "INDIVIDUAL_NO_MAILBOX" and sent["message"]["kind"] == "INDIVIDUAL"
    (item,) = await caught(stack, people[0], wait_for=1)
    assert item["envelope"]["mail_from"] == "news@relay-biz.example" and item["tls"] is True
    assert item["username"] == sandbox_server.smtp_credentials.username
    assert parsed(item)["Subject"] == "Before the mailbox" and "Biz News" in parsed(item)["From"]
    await wait_until_sent(stack, tenant, sent["message"]["id"])

    # With a mailbox: individual email goes through it and syncs.
    await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)
    preview = (await stack.graphql(RESOLVE, {"input": {"kind": "INDIVIDUAL"}}, token=tenant.token))["resolveSender"]
    assert (preview["route"], preview["synced"], preview["fromEmail"]) == ("MAILBOX", True, mailbox)
    data = await stack.graphql(SEND, {"input": {"to": [people[0]], "subject": "From my mailbox", "text": "hi",
                                                "idempotencyKey": key()}}, token=tenant.token)
    assert data["sendEmail"]["message"]["route"] == "MAILBOX"
    await wait_until_sent(stack, tenant, data["sendEmail"]["message"]["id"])
    assert await sent_subjects(stack, mailbox) == ["From my mailbox"]

    # Bulk with the mailbox's own From (another case, a display name): through the mailbox.
    data = await stack.graphql(SEND_BULK, {"input": {
        "recipients": [people[1], people[2]], "from": f"Agent <{mailbox.upper()}>", "subject": "Open house",
        "text": "Saturday", "idempotencyKey": key()}}, token=tenant.token)
    bulk = data["sendBulkEmail"]["bulkSend"]
    assert (bulk["route"], bulk["reason"], bulk["total"]) == ("MAILBOX", "BULK_FROM_IS_MAILBOX", 2)
    await wait_for_bulk(stack, tenant.token, bulk["id"], sent=2)
    # Bulk with a blank From: the sub-account provider, one delivery per recipient.
    data = await stack.graphql(SEND_BULK, {"input": {
        "recipients": [people[1], people[2], people[2].upper()], "subject": "Newsletter", "text": "News",
        "idempotencyKey": key()}}, token=tenant.token)
    bulk = data["sendBulkEmail"]["bulkSend"]
    assert (bulk["route"], bulk["reason"], bulk["total"]) == ("SUB_ACCOUNT", "BULK_FROM_BLANK", 2)
    await wait_for_bulk(stack, tenant.token, bulk["id"], sent=2)
    for person in people[1:3]:
        (item,) = await caught(stack, person, wait_for=1)
        assert parsed(item)["Subject"] == "Newsletter" and item["envelope"]["rcpt_tos"] == [person]

    # Workflow email from a partner app's API key: always the sub-account provider.
    created = await stack.graphql(CREATE_KEY, {"input": {
        "name": "automations", "subAccountId": to_global_id("SubAccount", tenant.sub_account_id)}}, token=tenant.token)
    api_key = created["createApiKey"]["key"]
    response = await stack.http.post("/graphql", headers={"Authorization": f"ApiKey {api_key}"}, json={
        "query": SEND_WORKFLOW, "variables": {"input": {
            "to": [people[3]], "subject": "Your appointment", "text": "Tomorrow 10am", "idempotencyKey": key(),
            "userId": to_global_id("User", tenant.user_id)}}})
    workflow = response.json()["data"]["sendWorkflowEmail"]
    assert workflow["userErrors"] == [] and workflow["message"]["route"] == "SUB_ACCOUNT"
    assert workflow["message"]["routeReason"] == "WORKFLOW_ALWAYS_SUB_ACCOUNT"
    (item,) = await caught(stack, people[3], wait_for=1)
    assert parsed(item)["Subject"] == "Your appointment"
    await wait_until_sent(stack, tenant, workflow["message"]["id"])

    # The mailbox's Sent folder holds exactly the mailbox-route emails, and only those synced.
    assert sorted(await sent_subjects(stack, mailbox)) == ["From my mailbox", "Open house", "Open house"]
    assert await caught(stack, people[0]) == [item for item in await caught(stack, people[0])
                                              if parsed(item)["Subject"] == "Before the mailbox"]
    thread = (await stack.graphql(THREAD, {"id": workflow["thread"]["id"]}, token=tenant.token))["thread"]
    assert [m["node"]["subject"] for m in thread["messages"]["edges"]] == ["Your appointment"]


async def wait_for_bulk(stack: Stack, token: str, bulk_id: str, *, sent: int) -> dict:  # type: ignore[type-arg]
    async def completed() -> dict | None:  # type: ignore[type-arg]
        node = (await stack.graphql(BULK, {"id": bulk_id}, token=token))["node"]
        return node if node["status"] == "COMPLETED" else None

    node = await stack.wait_for(completed, timeout=120, what="the bulk send to complete")
    assert (node["sentCount"], node["failedCount"], node["pendingCount"]) == (sent, 0, 0), node
    deliveries = [e["node"] for e in node["deliveries"]["edges"]]
    assert all(d["status"] == "SENT" and d["attempts"] == 1 for d in deliveries), deliveries
    return node


@pytest.mark.parametrize("stack", ["sqlite-embedded"], indirect=True)
async def test_a_retried_send_never_sends_twice_and_bad_input_is_refused_before_queueing(
    stack: Stack, sandbox_server: SandboxServer
) -> None:
    people = contacts(2)
    tenant = await stack.seed_tenant(name="Safe sends", contacts=people)
    base = {"to": [people[0]], "subject": "Once", "text": "only once"}

    # No mailbox and no relay: nothing can send it, and nothing is queued.
    data = await stack.graphql(SEND, {"input": {**base, "idempotencyKey": key()}}, token=tenant.token)
    assert data["sendEmail"]["userErrors"][0]["code"] == "NO_SENDER"
    await configure_relay(stack, tenant, sandbox_server)

    same = key()
    first = (await stack.graphql(SEND, {"input": {**base, "idempotencyKey": same}}, token=tenant.token))["sendEmail"]
    again = (await stack.graphql(SEND, {"input": {**base, "idempotencyKey": same}}, token=tenant.token))["sendEmail"]
    assert first["userErrors"] == [] and again["message"]["id"] == first["message"]["id"]
    assert again["thread"]["id"] == first["thread"]["id"]
    reused = (await stack.graphql(SEND, {"input": {**base, "text": "another text", "idempotencyKey": same}},
                                  token=tenant.token))["sendEmail"]
    assert reused["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED" and reused["message"] is None
    await wait_until_sent(stack, tenant, first["message"]["id"])
    assert len(await caught(stack, people[0])) == 1

    refusals = {
        "INVALID_HEADER": {**base, "subject": "Hi\u2028Bcc: spy@evil.example"},
        "NOT_A_CONTACT": {**base, "cc": ["stranger@else.example"]},
        "INVALID_EMAIL": {**base, "bcc": ["spy@evil.example\r\nX: y"]},
        "TOO_MANY_RECIPIENTS": {**base, "to": [f"c{i}@client.example" for i in range(101)]},
        "SUBJECT_TOO_LONG": {**base, "subject": "x" * 999},
        "EMPTY_BODY": {**base, "text": None},
    }
    for code, payload in refusals.items():
        data = await stack.graphql(SEND, {"input": {**payload, "idempotencyKey": key()}}, token=tenant.token)
        assert data["sendEmail"]["userErrors"][0]["code"] == code, (code, data)
    data = await stack.graphql(SEND_BULK, {"input": {"recipients": [people[1], "nobody@else.example"],
                                                     "subject": "s", "text": "t", "idempotencyKey": key()}},
                               token=tenant.token)
    assert data["sendBulkEmail"]["userErrors"][0]["code"] == "NOT_A_CONTACT"
    assert await caught(stack, people[1]) == [] and len(await caught(stack, people[0])) == 1
