"""Client-side steps shared by scenarios: connect a mailbox, send, read a thread."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from tests.support.browser import sign_in_until
from tests.support.stack import Stack, Tenant, trust

START = """mutation($input: StartEmailConnectionInput!) {
  startEmailConnection(input: $input) { authorizationUrl userErrors { code message field } } }"""
CONNECTION = """{ emailConnection { id provider address status statusDetail messagesSynced isCurrent } }"""
SEND = """mutation($input: SendEmailInput!) {
  sendEmail(input: $input) { message { id status } thread { id } userErrors { code message field } } }"""
THREAD = """query($id: ID!) { thread(id: $id) { id subject messageCount
  messages(first: 50) { edges { node { id direction origin status subject text isRead deletedInMailbox sentAt
    from { email } } } } } }"""
THREAD_EVENTS = """subscription($id: ID!) { threadEvents(threadId: $id) { type message { id direction text } } }"""


async def connect_mailbox(stack: Stack, tenant: Tenant, provider: str, mailbox: str) -> dict[str, Any]:
    """The whole sign-in as a browser does it: authorization URL → provider → our callback → SPA."""
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": provider.lower(), "address": mailbox, "name": "Owner"})
    return_to = "http://spa.invalid/settings/email"
    data = await stack.graphql(START, {"input": {"provider": provider, "redirectUri": return_to, "loginHint": mailbox}},
                               token=tenant.token)
    payload = data["startEmailConnection"]
    assert payload["userErrors"] == [], payload
    url = payload["authorizationUrl"]
    async with httpx.AsyncClient(verify=trust(stack.ca_file), timeout=30) as browser:
        response = await sign_in_until(browser, url, return_to)  # provider → our callback → the SPA
    landed = urlparse(response.headers["location"])
    assert parse_qs(landed.query).get("emailConnection") == ["connected"], response.headers["location"]

    async def active() -> dict[str, Any] | None:
        conn = (await stack.graphql(CONNECTION, token=tenant.token))["emailConnection"]
        return conn if conn and conn["status"] == "ACTIVE" else None

    return await stack.wait_for(active, what="an active connection")


async def thread_messages(stack: Stack, tenant: Tenant, thread_id: str) -> list[dict[str, Any]]:
    data = await stack.graphql(THREAD, {"id": thread_id}, token=tenant.token)
    return [e["node"] for e in data["thread"]["messages"]["edges"]]


async def sandbox_messages(stack: Stack, mailbox: str, folder: str) -> list[dict[str, Any]]:
    response = await stack.sandbox.get(f"/_sandbox/mailboxes/{mailbox}/messages", params={"folder": folder})
    response.raise_for_status()
    body = response.json()
    return body["messages"] if isinstance(body, dict) else body
