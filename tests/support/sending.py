"""The sender side driven as a client does: the relay configured over GraphQL, sends,
and what the sandbox's SMTP catcher and mailboxes received."""

from __future__ import annotations

import base64
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from sandbox.server import SandboxServer
from tests.support.stack import Stack, Tenant

CONFIGURE = """mutation ($input: ConfigureSubAccountEmailProviderInput!) {
  configureSubAccountEmailProvider(input: $input) {
    provider { host port tlsMode username hasPassword fromEmail fromName maxPerMinute verifiedAt }
    userErrors { field code message } } }"""
SEND = """mutation ($input: SendEmailInput!) { sendEmail(input: $input) {
  message { id status route routeReason kind from { email name } } thread { id }
  userErrors { field code message } } }"""
SEND_WORKFLOW = """mutation ($input: SendWorkflowEmailInput!) { sendWorkflowEmail(input: $input) {
  message { id status route routeReason kind } thread { id } userErrors { field code message } } }"""
SEND_BULK = """mutation ($input: SendBulkEmailInput!) { sendBulkEmail(input: $input) {
  bulkSend { id status route reason fromEmail total sentCount failedCount pendingCount }
  userErrors { field code message } } }"""
MESSAGE = """query ($id: ID!) { node(id: $id) { ... on Message { id status statusDetail route routeReason kind } } }"""
BULK = """query ($id: ID!) { node(id: $id) { ... on BulkSend { id status route reason total sentCount failedCount
  pendingCount completedAt deliveries(first: 100) { edges { node { recipient status attempts
  message { id route kind } } } pageInfo { hasNextPage endCursor } } } } }"""
BULK_EVENTS = """subscription ($id: ID!) { bulkSendEvents(bulkSendId: $id) {
  type bulkSend { status total sentCount failedCount pendingCount } } }"""
RULES = """{ senderDomainRules { mailboxAddress provider { host fromEmail hasPassword tlsMode }
  rules { kind route reason explanation synced available } } }"""
RESOLVE = """query ($input: ResolveSenderInput!) { resolveSender(input: $input) {
  kind route reason explanation synced available fromEmail } }"""


def key() -> str:
    return str(uuid.uuid4())


def relay_input(sandbox: SandboxServer, **overrides: Any) -> dict[str, Any]:
    credentials = sandbox.smtp_credentials
    return {"host": "127.0.0.1", "port": sandbox.smtp_port, "tlsMode": "STARTTLS",
            "username": credentials.username, "password": credentials.password,
            "fromEmail": "news@relay-biz.example", "fromName": "Biz News", **overrides}


async def configure_relay(stack: Stack, tenant: Tenant, sandbox: SandboxServer, **overrides: Any) -> dict[str, Any]:
    data = await stack.graphql(CONFIGURE, {"input": relay_input(sandbox, **overrides)}, token=tenant.token)
    return data["configureSubAccountEmailProvider"]


async def caught(stack: Stack, rcpt: str, *, wait_for: int = 0) -> list[dict[str, Any]]:
    """What the sandbox's SMTP catcher received for ``rcpt`` (waiting for ``wait_for`` of them)."""
    params: dict[str, Any] = {"rcpt": rcpt}
    if wait_for:
        params.update(wait_for=wait_for, timeout=30)
    response = await stack.sandbox.get("/_sandbox/smtp/messages", params=params)
    response.raise_for_status()
    return response.json()


def parsed(item: dict[str, Any]) -> EmailMessage:
    return message_from_bytes(base64.b64decode(item["raw_base64"]), policy=policy.default)  # type: ignore[return-value]


async def message_state(stack: Stack, tenant: Tenant, message_id: str) -> dict[str, Any]:
    return (await stack.graphql(MESSAGE, {"id": message_id}, token=tenant.token))["node"]


async def wait_until_sent(stack: Stack, tenant: Tenant, message_id: str, status: str = "SENT") -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        state = await message_state(stack, tenant, message_id)
        assert state["status"] in ("QUEUED", status), state
        return state if state["status"] == status else None

    return await stack.wait_for(done, timeout=60, what=f"message {status}")
