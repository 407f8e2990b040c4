"""DESIGN.md rule 10 end to end: every route driven over GraphQL, and checked where the
email actually arrived (the sandbox mailbox's Sent folder, or the SMTP catcher) and
whether it synced. Runs on SQLite + embedded queue and on PostgreSQL + Redis + worker."""

from __future__ import annotations

import base64
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from api.auth import mint_dev_token
from api.ids import to_global_id
from db.models import IdempotencyKey, User
from sandbox.server import SandboxServer
from tests.support.flows import CONNECTION, THREAD, app_page, connect_mailbox, finish_sign_in, sandbox_messages
from tests.support.sending import (
    BULK,
    CONFIGURE,
    RESOLVE,
    RULES,
    SEND,
    SEND_BULK,
    SEND_WORKFLOW,
    caught,
    configure_relay,
    key,
    parsed,
    relay_input,
    wait_until_sent,
)
from tests.support.stack import Stack, free_port

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


@pytest.mark.parametrize("stack", ["sqlite-embedded"], indirect=True)
async def test_the_provider_is_tested_on_save_and_its_password_never_comes_back(
    stack: Stack, sandbox_server: SandboxServer
) -> None:
    tenant = await stack.seed_tenant(name="Relay settings")
    password = sandbox_server.smtp_credentials.password
    failures = {
        "AUTH_FAILED": ({"password": "not-the-password"}, "password"),
        "TLS_FAILED": ({"tlsMode": "IMPLICIT"}, "tlsMode"),  # TLS spoken to the plain port
        "UNREACHABLE": ({"port": free_port()}, "host"),
        "TLS_REQUIRED": ({"host": "smtp.example.com", "tlsMode": "NONE"}, "tlsMode"),
        "INVALID_HEADER": ({"fromName": "News\u2029Bcc: x@evil.example"}, "fromName"),
        "INVALID_EMAIL": ({"fromEmail": "not an address"}, "fromEmail"),
    }
    for code, (overrides, field) in failures.items():
        result = await configure_relay(stack, tenant, sandbox_server, **overrides)
        assert result["provider"] is None and [(e["code"], e["field"]) for e in result["userErrors"]] == [
            (code, field)], (code, result)
    assert (await stack.graphql(RULES, token=tenant.token))["senderDomainRules"]["provider"] is None  # nothing saved

    saved = await configure_relay(stack, tenant, sandbox_server, port=sandbox_server.smtps_port, tlsMode="IMPLICIT")
    assert saved["userErrors"] == [] and saved["provider"]["hasPassword"] is True and saved["provider"]["verifiedAt"]
    # Saved again without a password: the stored one is kept (and tested again).
    kept = await configure_relay(stack, tenant, sandbox_server, port=sandbox_server.smtps_port, tlsMode="IMPLICIT",
                                 password=None, fromName="Biz Updates")
    assert kept["userErrors"] == [] and kept["provider"]["fromName"] == "Biz Updates"
    response = await stack.http.post("/graphql", headers={"Authorization": f"Bearer {tenant.token}"},
                                     json={"query": RULES})
    assert password not in response.text
    async with stack.runtime.sessions() as session:
        stored = (await session.execute(text("SELECT * FROM sub_account_email_providers"))).mappings().all()
    assert stored and all(password not in str(dict(row)) for row in stored)

    member = await stack.seed_tenant(name="Not an admin", role="user")
    body = (await stack.http.post("/graphql", headers={"Authorization": f"Bearer {member.token}"}, json={
        "query": CONFIGURE, "variables": {"input": relay_input(sandbox_server)}})).json()
    assert body["data"] is None or body["data"]["configureSubAccountEmailProvider"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_attachments_go_out_through_the_relay_byte_for_byte(stack: Stack, sandbox_server: SandboxServer) -> None:
    (person,) = contacts(1)
    tenant = await stack.seed_tenant(name="Relay attachments", contacts=(person,))
    await configure_relay(stack, tenant, sandbox_server)
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    data = await stack.graphql(SEND, {"input": {
        "to": [person], "subject": "Floor plan", "html": "<p>Attached <b>plan</b></p>", "text": "Attached plan",
        "idempotencyKey": key(), "attachments": [
            {"filename": "plan é.pdf", "contentType": "application/pdf", "contentBase64": base64.b64encode(pdf).decode()}]}},
        token=tenant.token)
    assert data["sendEmail"]["userErrors"] == []
    (item,) = await caught(stack, person, wait_for=1)
    mime = parsed(item)
    parts = {part.get_content_type(): part for part in mime.walk() if not part.is_multipart()}
    assert parts["text/plain"].get_content().strip() == "Attached plan"
    assert "<b>plan</b>" in parts["text/html"].get_content()
    attachment = parts["application/pdf"]
    assert attachment.get_filename() == "plan é.pdf" and attachment.get_content() == pdf
    assert mime["Message-ID"] and mime["Bcc"] is None


async def test_update_email_switches_the_sending_mailbox(stack: Stack) -> None:
    (person,) = contacts(1)
    tenant = await stack.seed_tenant(name="Switch", contacts=(person,))
    old, new = (f"{name}-{uuid.uuid4().hex[:6]}@demo-realty.example" for name in ("old", "new"))
    update = """mutation ($input: StartEmailConnectionInput!) { updateEmailConnection(input: $input) {
      authorizationUrl userErrors { code } } }"""
    refused = await stack.graphql(update, {"input": {"provider": "GMAIL"}}, token=tenant.token)
    assert refused["updateEmailConnection"] == {"authorizationUrl": None, "userErrors": [{"code": "NOT_CONNECTED"}]}

    await connect_mailbox(stack, tenant, "OUTLOOK", old)
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": "gmail", "address": new, "name": "New"})
    return_to = app_page(stack)
    data = await stack.graphql(update, {"input": {"provider": "GMAIL", "redirectUri": return_to, "loginHint": new}},
                               token=tenant.token)
    url = data["updateEmailConnection"]["authorizationUrl"]
    connected = await finish_sign_in(stack, tenant, url, return_to)
    assert (connected["address"], connected["isCurrent"]) == (new, True)

    async def switched() -> bool:
        conn = (await stack.graphql(CONNECTION, token=tenant.token))["emailConnection"]
        return conn["address"] == new and conn["status"] == "ACTIVE"

    await stack.wait_for(switched, what="the new mailbox to be the active one")
    data = await stack.graphql(SEND, {"input": {"to": [person], "subject": "From the new mailbox", "text": "hi",
                                                "idempotencyKey": key()}}, token=tenant.token)
    await wait_until_sent(stack, tenant, data["sendEmail"]["message"]["id"])
    assert [m["subject"] for m in await sandbox_messages(stack, new, "sent")] == ["From the new mailbox"]
    assert await sandbox_messages(stack, old, "sent") == []


@pytest.mark.parametrize("stack", ["sqlite-embedded"], indirect=True)
async def test_what_the_sender_side_refuses(stack: Stack, sandbox_server: SandboxServer) -> None:
    people = contacts(2)
    admin = await stack.seed_tenant(name="Guards", contacts=people)
    password = sandbox_server.smtp_credentials.password
    assert (await configure_relay(stack, admin, sandbox_server))["userErrors"] == []

    # The stored password is never handed to another server: a new host/port needs it again.
    moved = await configure_relay(stack, admin, sandbox_server, password=None, port=sandbox_server.smtps_port,
                                  tlsMode="IMPLICIT")
    assert [(e["code"], e["field"]) for e in moved["userErrors"]] == [("INVALID", "password")]
    # Nor echoed back in an error about another field of the same input.
    broken = relay_input(sandbox_server)
    del broken["port"]
    response = await stack.http.post("/graphql", headers={"Authorization": f"Bearer {admin.token}"},
                                     json={"query": CONFIGURE, "variables": {"input": broken}})
    assert response.json()["errors"] and password not in response.text

    # A bulk email with another From goes out through the relay with that From.
    data = await stack.graphql(SEND_BULK, {"input": {"recipients": [people[0]], "from": "Offers <offers@biz.example>",
                                                     "subject": "Offer", "text": "t", "idempotencyKey": key()}},
                               token=admin.token)
    bulk = data["sendBulkEmail"]["bulkSend"]
    assert (bulk["reason"], bulk["fromEmail"]) == ("BULK_NO_MAILBOX", "offers@biz.example")
    (item,) = await caught(stack, people[0], wait_for=1)
    assert item["envelope"]["mail_from"] == "offers@biz.example" and parsed(item)["From"] == "Offers <offers@biz.example>"

    # A user of the sub-account sees their own bulk sends only; admins see all.
    async with stack.runtime.sessions.begin() as session:
        member = User(sub_account_id=admin.sub_account_id, email=f"m-{uuid.uuid4().hex[:6]}@biz.example",
                      email_normalized="m", role="user")
        session.add(member)
    member_token = mint_dev_token(stack.settings, user_id=str(member.id), sub_account_id=str(admin.sub_account_id),
                                  role="user")
    assert (await stack.graphql(BULK, {"id": bulk["id"]}, token=member_token))["node"] is None
    assert (await stack.graphql(BULK, {"id": bulk["id"]}, token=admin.token))["node"]["id"] == bulk["id"]

    # A workflow email's user must be of this sub-account, and only admins send for another user.
    other = await stack.seed_tenant(name="Elsewhere")
    workflow = {"to": [people[1]], "subject": "Reminder", "text": "t"}
    data = await stack.graphql(SEND_WORKFLOW, {"input": {**workflow, "idempotencyKey": key(),
                                                         "userId": to_global_id("User", other.user_id)}},
                               token=admin.token)
    assert data["sendWorkflowEmail"]["userErrors"][0]["code"] == "NOT_FOUND"
    data = await stack.graphql(SEND_WORKFLOW, {"input": {**workflow, "idempotencyKey": key(),
                                                         "userId": to_global_id("User", admin.user_id)}},
                               token=member_token)
    assert data["sendWorkflowEmail"]["userErrors"][0]["code"] == "FORBIDDEN"
    assert await caught(stack, people[1]) == []

    # A mailbox that needs a new sign-in does not silently hand its email to the relay.
    mailbox = f"stale-{uuid.uuid4().hex[:6]}@demo-realty.example"
    await connect_mailbox(stack, admin, "OUTLOOK", mailbox)
    (await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/revoke")).raise_for_status()
    await stack.graphql("mutation { requestSync { userErrors { code } } }", token=admin.token)

    async def needs_sign_in() -> bool:
        conn = (await stack.graphql(CONNECTION, token=admin.token))["emailConnection"]
        return conn["status"] == "REAUTH_REQUIRED"

    await stack.wait_for(needs_sign_in, timeout=30, what="the revoked mailbox to need a new sign-in")
    preview = (await stack.graphql(RESOLVE, {"input": {"kind": "INDIVIDUAL"}}, token=admin.token))["resolveSender"]
    assert preview["available"] is False
    data = await stack.graphql(SEND, {"input": {"to": [people[1]], "subject": "Stuck", "text": "t",
                                                "idempotencyKey": key()}}, token=admin.token)
    assert data["sendEmail"]["userErrors"][0]["code"] == "REAUTH_REQUIRED"
    assert await caught(stack, people[1]) == []


@pytest.mark.parametrize("stack", ["sqlite-embedded"], indirect=True)
async def test_bulk_sends_are_paced_and_idempotent_and_keys_expire(stack: Stack, sandbox_server: SandboxServer) -> None:
    people = contacts(3)
    tenant = await stack.seed_tenant(name="Pacing", contacts=people)
    assert (await configure_relay(stack, tenant, sandbox_server, maxPerMinute=120))["userErrors"] == []  # 0.5 s apart
    request = {"recipients": list(people), "subject": "Paced", "text": "t", "idempotencyKey": key()}
    first = (await stack.graphql(SEND_BULK, {"input": request}, token=tenant.token))["sendBulkEmail"]["bulkSend"]
    again = (await stack.graphql(SEND_BULK, {"input": request}, token=tenant.token))["sendBulkEmail"]["bulkSend"]
    assert again["id"] == first["id"]
    await wait_for_bulk(stack, tenant.token, first["id"], sent=3)
    received = []
    for person in people:
        (item,) = await caught(stack, person, wait_for=1)
        received.append(datetime.fromisoformat(item["received_at"].replace("Z", "+00:00")))
    received.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(received)]
    assert all(gap >= 0.45 for gap in gaps), gaps  # the relay's pace: a lower bound, whatever the load
    assert [len(await caught(stack, person)) for person in people] == [1, 1, 1]

    # After 24 hours a key answers nothing any more: the same key queues a new email.
    single = {"to": [people[0]], "subject": "Daily", "text": "t", "idempotencyKey": "daily-report"}
    one = (await stack.graphql(SEND, {"input": single}, token=tenant.token))["sendEmail"]["message"]["id"]
    async with stack.runtime.sessions.begin() as session:
        await session.execute(update(IdempotencyKey).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    two = (await stack.graphql(SEND, {"input": single}, token=tenant.token))["sendEmail"]["message"]["id"]
    assert two != one
    await wait_until_sent(stack, tenant, two)
    assert len(await caught(stack, people[0])) == 3  # paced bulk + two dailies
