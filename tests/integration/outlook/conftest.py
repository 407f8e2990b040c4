"""The Outlook adapter against the real sandbox (Microsoft identity platform + Graph),
over HTTPS on loopback with the sandbox's own CA.

No HTTP layer is mocked: msal talks to the sandbox's token endpoint, httpx to its
Graph. The sandbox's control API (``/_sandbox``) sets the world up.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from sync_engine.domain import ConnectedAccount
from sync_engine.providers.outlook import OutlookProvider, build_outlook_provider
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

REDIRECT_URI = "https://app.emailsync.test/oauth/outlook/callback"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture(scope="session")
def control(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with sandbox.control_client(timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def settings(sandbox: SandboxServer) -> Settings:
    return Settings(
        microsoft_authority=sandbox.authority,
        graph_base_url=sandbox.graph_base_url,
        ca_bundle=sandbox.ca_file,
        microsoft_client_id="emailsync-outlook-tests",
        graph_page_size=10,
    )


@pytest.fixture(scope="session")
def provider(settings: Settings) -> Iterator[OutlookProvider]:
    built = build_outlook_provider(settings)
    yield built
    built.auth.close()


@pytest.fixture(autouse=True)
def _clean_faults_and_config(control: httpx.Client) -> Iterator[None]:
    yield
    control.delete("/faults")
    control.patch("/config", json={"delta_string_booleans": False})


@pytest.fixture
def mailbox(control: httpx.Client) -> str:
    """A fresh Outlook mailbox (unique address) for one test."""
    return add_mailbox(control, "outlook", f"user-{uuid.uuid4().hex[:10]}@contoso.test")


async def sign_in(provider: OutlookProvider, sandbox: SandboxServer, address: str) -> ConnectedAccount:
    return await sign_in_through_browser(provider, sandbox.ca_file, address, REDIRECT_URI)


@pytest.fixture
def refreshed() -> Recorder:
    return Recorder()


@pytest.fixture
async def connected(provider: OutlookProvider, sandbox: SandboxServer, mailbox: str, refreshed: Recorder):
    account = await sign_in(provider, sandbox, mailbox)
    client = provider.client(account.tokens, refreshed)
    try:
        yield account, client
    finally:
        await client.aclose()


class WebhookReceiver(RecordingEndpoint):
    """A plain-HTTP notification endpoint: echoes validation tokens, records posts."""

    path = "/webhooks/graph"

    def answer(self, handler: BaseHTTPRequestHandler, query: dict[str, str], body: bytes) -> None:
        if "validationToken" in query:
            payload = query["validationToken"].encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        self.record(dict(handler.headers), query, body)
        handler.send_response(202)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def wait_for(self, predicate, timeout: float = 10.0) -> list[Post]:
        def hits() -> list[Post] | None:
            return [p for p in self.posts if predicate(p)] or None

        return self.poll(hits, timeout, lambda: "no matching notification arrived")


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


class World:
    """Helpers the tests use to drive and inspect the sandbox (a fixture, because the
    test modules are imported with ``--import-mode=importlib`` and cannot import this)."""

    redirect_uri = REDIRECT_URI

    def __init__(self, provider: OutlookProvider, sandbox: SandboxServer, control: httpx.Client) -> None:
        self.provider, self.sandbox, self.control = provider, sandbox, control
        self.ssl = ssl.create_default_context(cafile=sandbox.ca_file)

    async def sign_in(self, address: str) -> ConnectedAccount:
        return await sign_in(self.provider, self.sandbox, address)

    def messages(self, address: str, folder: str | None = None) -> list[dict[str, Any]]:
        return mailbox_messages(self.control, address, folder)

    def requests(self, address: str | None, path: str | None = None) -> list[dict[str, Any]]:
        return requests_log(self.control, address, path)

    def inbound(self, address: str, **fields: Any) -> dict[str, Any]:
        return inbound(self.control, address, **fields)

    def owner_sends(self, address: str, **fields: Any) -> dict[str, Any]:
        return owner_sends(self.control, address, **fields)

    def fault(self, **spec: Any) -> None:
        add_fault(self.control, **spec)


@pytest.fixture
def world(provider: OutlookProvider, sandbox: SandboxServer, control: httpx.Client) -> World:
    return World(provider, sandbox, control)


@pytest.fixture
def checkpoint_factory():
    return Checkpoint


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # msal warns on every query-mode flow; the adapter filters it at import, but pytest
    # resets warning filters per test. The callback route is a GET by design.
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended"))
