"""Client-side steps shared by scenarios: connect a mailbox, send, read a thread."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.browser import flow_token_of, sign_in_until
from tests.support.stack import Stack, Tenant, trust

START = """mutation($input: StartEmailConnectionInput!) {
  startEmailConnection(input: $input) { authorizationUrl userErrors { code message field } } }"""
COMPLETE = """mutation($input: CompleteEmailConnectionInput!) { completeEmailConnection(input: $input) {
  emailConnection { id provider address status isCurrent } userErrors { code message field } } }"""
CONNECTION = """{ emailConnection { id provider address status statusDetail messagesSynced isCurrent } }"""
SEND = """mutation($input: SendEmailInput!) {
  sendEmail(input: $input) { message { id status } thread { id } userErrors { code message field } } }"""
THREAD = """query($id: ID!) { thread(id: $id) { id subject messageCount
  messages(first: 50) { edges { node { id direction origin status subject text isRead deletedInMailbox sentAt
    from { email } } } } } }"""
THREAD_EVENTS = """subscription($id: ID!) { threadEvents(threadId: $id) { type message { id direction text } } }"""


def app_page(stack: Stack) -> str:
    """Where the sign-ins of these tests return to: the API's own ``/connected`` page (its
    origin is always allowed; the tests stop at the redirect, as an app's page would)."""
    return f"{stack.base_url}/connected"


async def browser_sign_in(stack: Stack, authorization_url: str, return_to: str) -> str:
    """The browser's part: provider → our callback → back at ``return_to``; returns the
    flow token it came back with."""
    async with httpx.AsyncClient(verify=trust(stack.ca_file), timeout=30) as browser:
        return flow_token_of(await sign_in_until(browser, authorization_url, return_to))


async def complete_sign_in(stack: Stack, tenant: Tenant, flow_token: str) -> dict[str, Any]:
    """The app's part: completeEmailConnection with the tenant's own credentials (the payload)."""
    return (await stack.graphql(COMPLETE, {"input": {"flowToken": flow_token}}, token=tenant.token))["completeEmailConnection"]


async def finish_sign_in(stack: Stack, tenant: Tenant, authorization_url: str, return_to: str) -> dict[str, Any]:
    """Browser then app: the connection completeEmailConnection returns."""
    payload = await complete_sign_in(stack, tenant, await browser_sign_in(stack, authorization_url, return_to))
    assert payload["userErrors"] == [] and payload["emailConnection"] is not None, payload
    return payload["emailConnection"]


async def connect_mailbox(stack: Stack, tenant: Tenant, provider: str, mailbox: str) -> dict[str, Any]:
    """The whole sign-in as a browser and the app do it: authorization URL → provider → our
    callback → the app's page → completeEmailConnection."""
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": provider.lower(), "address": mailbox, "name": "Owner"})
    return_to = app_page(stack)
    data = await stack.graphql(START, {"input": {"provider": provider, "redirectUri": return_to, "loginHint": mailbox}},
                               token=tenant.token)
    payload = data["startEmailConnection"]
    assert payload["userErrors"] == [], payload
    connected = await finish_sign_in(stack, tenant, payload["authorizationUrl"], return_to)
    assert connected["address"].lower() == mailbox.lower(), connected

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
