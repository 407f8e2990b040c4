"""The Outlook adapter against the real sandbox (Microsoft identity platform + Graph),
over HTTPS on loopback with the sandbox's own CA.

No HTTP layer is mocked: msal talks to the sandbox's token endpoint, httpx to its
Graph. The sandbox's control API (``/_sandbox``) sets the world up.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox.server import SandboxServer
from sync_engine.domain import ConnectedAccount, TokenSet
from sync_engine.providers.outlook import OutlookProvider, build_outlook_provider
from sync_engine.settings import Settings

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
    address = f"user-{uuid.uuid4().hex[:10]}@contoso.test"
    r = control.post("/mailboxes", json={"provider": "outlook", "address": address, "name": "Test User"})
    assert r.status_code == 201, r.text
    return address


async def sign_in(provider: OutlookProvider, sandbox: SandboxServer, address: str) -> ConnectedAccount:
    """The browser part of the auth-code flow: follow the authorize URL with login_hint."""
    request = await provider.begin_authorization(REDIRECT_URI, login_hint=address)
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=sandbox.ca_file)) as browser:
        response = await browser.get(request.url)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI)
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params["state"] == request.state
    return await provider.complete_authorization(request.flow, params, REDIRECT_URI)


class Recorder:
    """Collects ``on_tokens_refreshed`` calls."""

    def __init__(self) -> None:
        self.calls: list[TokenSet] = []

    async def __call__(self, tokens: TokenSet) -> None:
        self.calls.append(tokens)


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


class Checkpoint:
    """An outbox row's durable send state, in memory."""

    def __init__(
        self,
        state: dict[str, Any] | None = None,
        fail_on_save: int | None = None,
        fail_with: type[BaseException] = RuntimeError,
    ) -> None:
        self.state: dict[str, Any] = dict(state or {})
        self.saves: list[dict[str, Any]] = []
        self._fail_on_save = fail_on_save
        self._fail_with = fail_with

    async def save(self, state: Any) -> None:
        self.saves.append(dict(state))
        self.state = dict(state)  # committed...
        if self._fail_on_save == len(self.saves):
            raise self._fail_with("worker killed right after the commit")  # ...then the worker dies


class WebhookReceiver:
    """A plain-HTTP notification endpoint: echoes validation tokens, records posts."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, str], bytes]] = []
        self.event = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if "validationToken" in query:
                    payload = query["validationToken"].encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                receiver.posts.append((dict(self.headers), query, body))
                receiver.event.set()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/graph"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate, timeout: float = 10.0) -> list[tuple[dict[str, str], dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [p for p in self.posts if predicate(p)]
            if hits:
                return hits
            self.event.wait(0.05)
            self.event.clear()
        raise AssertionError("no matching notification arrived")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def messages(control: httpx.Client, address: str, folder: str | None = None) -> list[dict[str, Any]]:
    r = control.get(f"/mailboxes/{address}/messages", params={"folder": folder} if folder else None)
    assert r.status_code == 200, r.text
    return r.json()


def requests_log(control: httpx.Client, address: str | None, path: str | None = None) -> list[dict[str, Any]]:
    params = {"mailbox": address} if address else {}
    if path:
        params["path"] = path
    r = control.get("/requests", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def inbound(control: httpx.Client, address: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("from", {"address": "client@example.com", "name": "A Client"})
    r = control.post(f"/mailboxes/{address}/inbound", json=fields)
    assert r.status_code == 201, r.text
    return r.json()


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
        return messages(self.control, address, folder)

    def requests(self, address: str | None, path: str | None = None) -> list[dict[str, Any]]:
        return requests_log(self.control, address, path)

    def inbound(self, address: str, **fields: Any) -> dict[str, Any]:
        return inbound(self.control, address, **fields)

    def owner_sends(self, address: str, **fields: Any) -> dict[str, Any]:
        r = self.control.post(f"/mailboxes/{address}/send", json=fields)
        assert r.status_code == 201, r.text
        return r.json()

    def fault(self, **spec: Any) -> None:
        r = self.control.post("/faults", json=spec)
        assert r.status_code == 201, r.text


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
