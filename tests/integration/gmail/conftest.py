"""The Gmail adapter against the real sandbox (Google OAuth, Gmail API v1, the batch
endpoint, per-user quota, Pub/Sub push with OIDC tokens), over HTTPS on loopback with
the sandbox's own CA.

No HTTP layer is mocked: google-auth talks to the sandbox's token endpoint, httpx to
its Gmail API. The sandbox's control API (``/_sandbox``) sets the world up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from sync_engine.domain import ConnectedAccount
from sync_engine.providers.gmail import GmailProvider, build_gmail_provider
from sync_engine.settings import Settings
from tests.support.adapters import (
    Checkpoint,
    Post,
    Recorder,
    RecordingEndpoint,
    add_fault,
    add_mailbox,
    inbound,
    mailbox_messages,
    owner_sends,
    requests_log,
)
from tests.support.adapters import sign_in as sign_in_through_browser

REDIRECT_URI = "https://app.emailsync.test/oauth/gmail/callback"
PUBLIC_BASE_URL = "https://crm.emailsync.test"
PUSH_ACCOUNT = "gmail-push@emailsync-tests.iam.gserviceaccount.com"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture(scope="session")
def control(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with sandbox.control_client(timeout=30) as client:
        yield client


def gmail_settings(sandbox: SandboxServer, **overrides: Any) -> Settings:
    base = sandbox.base_url
    fields: dict[str, Any] = dict(
        google_auth_uri=f"{base}/o/oauth2/v2/auth",
        google_token_uri=f"{base}/token",
        google_revoke_uri=f"{base}/revoke",
        google_certs_url=f"{base}/oauth2/v1/certs",
        gmail_base_url=base,
        ca_bundle=sandbox.ca_file,
        google_client_id="emailsync-gmail-tests.apps.googleusercontent.com",
        public_base_url=PUBLIC_BASE_URL,
        gmail_push_service_account=PUSH_ACCOUNT,
        gmail_pubsub_topic="projects/emailsync-tests/topics/gmail",
    )
    fields.update(overrides)
    return Settings(**fields)


@pytest.fixture(scope="session")
def settings(sandbox: SandboxServer) -> Settings:
    return gmail_settings(sandbox)


@pytest.fixture(scope="session")
def provider(settings: Settings) -> Iterator[GmailProvider]:
    built = build_gmail_provider(settings)
    yield built
    built.auth.close()


@pytest.fixture(autouse=True)
def _clean_faults_and_config(control: httpx.Client) -> Iterator[None]:
    yield
    control.delete("/faults")
    r = control.patch("/config", json={"gmail_quota_per_minute": 15000, "gmail_quota_window_seconds": 60.0})
    assert r.status_code == 200, r.text


@pytest.fixture
def mailbox(control: httpx.Client) -> str:
    """A fresh Gmail mailbox (unique address) for one test."""
    return add_mailbox(control, "gmail", f"user-{uuid.uuid4().hex[:10]}@gmail.test")


async def sign_in(provider: GmailProvider, sandbox: SandboxServer, address: str) -> ConnectedAccount:
    return await sign_in_through_browser(provider, sandbox.ca_file, address, REDIRECT_URI)


@pytest.fixture
def refreshed() -> Recorder:
    return Recorder()


@pytest.fixture
async def connected(provider: GmailProvider, sandbox: SandboxServer, mailbox: str, refreshed: Recorder):
    account = await sign_in(provider, sandbox, mailbox)
    client = provider.client(account.tokens, refreshed)
    try:
        yield account, client
    finally:
        await client.aclose()


class PushReceiver(RecordingEndpoint):
    """A plain-HTTP Pub/Sub push endpoint: records every POST (headers, query, body)."""

    path = "/webhooks/gmail"

    def answer(self, handler: BaseHTTPRequestHandler, query: dict[str, str], body: bytes) -> None:
        # as the API route hands them over: lower-cased names
        self.record({k.lower(): v for k, v in handler.headers.items()}, query, body)
        handler.send_response(204)
        handler.end_headers()

    def wait_for(self, count: int = 1, timeout: float = 15.0) -> list[Post]:
        return self.poll(
            lambda: list(self.posts) if len(self.posts) >= count else None,
            timeout,
            lambda: f"expected {count} push(es), got {len(self.posts)}",
        )


@pytest.fixture
def push_receiver() -> Iterator[PushReceiver]:
    receiver = PushReceiver()
    yield receiver
    receiver.close()


class World:
    """Helpers the tests use to drive and inspect the sandbox (a fixture, because the
    test modules are imported with ``--import-mode=importlib`` and cannot import this)."""

    redirect_uri = REDIRECT_URI
    push_account = PUSH_ACCOUNT
    public_base_url = PUBLIC_BASE_URL

    def __init__(self, provider: GmailProvider, sandbox: SandboxServer, control: httpx.Client) -> None:
        self.provider, self.sandbox, self.control = provider, sandbox, control

    async def sign_in(self, address: str, provider: GmailProvider | None = None) -> ConnectedAccount:
        return await sign_in(provider or self.provider, self.sandbox, address)

    def settings(self, **overrides: Any) -> Settings:
        return gmail_settings(self.sandbox, **overrides)

    def messages(self, address: str, folder: str | None = None) -> list[dict[str, Any]]:
        return mailbox_messages(self.control, address, folder)

    def message(self, address: str, message_id: str) -> dict[str, Any]:
        r = self.control.get(f"/mailboxes/{address}/messages/{message_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def requests(self, address: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        return requests_log(self.control, address, path)

    def inbound(self, address: str, **fields: Any) -> dict[str, Any]:
        return inbound(self.control, address, **fields)

    def inbound_bulk(self, address: str, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            m.setdefault("from", {"address": "client@example.com", "name": "A Client"})
        r = self.control.post(f"/mailboxes/{address}/inbound/bulk", json={"messages": messages})
        assert r.status_code in (200, 201), r.text

    def owner_sends(self, address: str, **fields: Any) -> dict[str, Any]:
        return owner_sends(self.control, address, **fields)

    def fault(self, **spec: Any) -> None:
        add_fault(self.control, **spec)

    def config(self, **values: Any) -> None:
        r = self.control.patch("/config", json=values)
        assert r.status_code == 200, r.text

    def subscribe(self, topic: str, endpoint: str, audience: str, account: str = PUSH_ACCOUNT) -> None:
        r = self.control.post("/google/pubsub/subscriptions", json={
            "topic": topic, "pushEndpoint": endpoint, "audience": audience, "serviceAccountEmail": account})
        assert r.status_code in (200, 201), r.text

    def watches(self) -> list[dict[str, Any]]:
        r = self.control.get("/google/watches")
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def world(provider: GmailProvider, sandbox: SandboxServer, control: httpx.Client) -> World:
    return World(provider, sandbox, control)


@pytest.fixture
def checkpoint_factory():
    return Checkpoint
