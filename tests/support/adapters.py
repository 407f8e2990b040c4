"""Helpers the adapters' integration tests share: recorders of token refreshes and of
send checkpoints, loopback HTTP endpoints that record provider posts (Graph
notifications, Pub/Sub pushes), the sandbox control calls both adapters' tests make,
and the sign-in itself."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx

from sync_engine.domain import ConnectedAccount, TokenSet
from sync_engine.providers.base import MailProvider
from tests.support.browser import provider_answer

T = TypeVar("T")
Post = tuple[dict[str, str], dict[str, str], bytes]


class Recorder:
    """Collects ``on_tokens_refreshed`` calls."""

    def __init__(self) -> None:
        self.calls: list[TokenSet] = []

    async def __call__(self, tokens: TokenSet) -> None:
        self.calls.append(tokens)


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


class RecordingEndpoint:
    """A plain-HTTP endpoint on loopback, served from a thread; ``answer`` handles
    each POST (``record`` it, or answer otherwise)."""

    path = "/"

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.event = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                endpoint.answer(self, query, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, handler: BaseHTTPRequestHandler, query: dict[str, str], body: bytes) -> None:
        raise NotImplementedError

    def record(self, headers: dict[str, str], query: dict[str, str], body: bytes) -> None:
        self.posts.append((headers, query, body))
        self.event.set()

    def poll(self, found: Callable[[], T | None], timeout: float, failure: Callable[[], str]) -> T:
        """What ``found`` returns once it is something, waiting for posts up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = found()
            if result is not None:
                return result
            self.event.wait(0.05)
            self.event.clear()
        raise AssertionError(failure())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebhookReceiver(RecordingEndpoint):
    """A Graph notification endpoint: echoes validation tokens, records posts."""

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

    def wait_for(self, predicate: Callable[[Post], bool], timeout: float = 10.0) -> list[Post]:
        def hits() -> list[Post] | None:
            return [p for p in self.posts if predicate(p)] or None

        return self.poll(hits, timeout, lambda: "no matching notification arrived")


class PushReceiver(RecordingEndpoint):
    """A Pub/Sub push endpoint (Gmail): records every POST (headers, query, body)."""

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


# ---- the sandbox's control API


async def sign_in(provider: MailProvider, ca_file: str, address: str, redirect_uri: str) -> ConnectedAccount:
    """The browser's part of the auth-code flow (``login_hint`` signs in without a form),
    then the adapter redeems what the provider handed back to ``redirect_uri``."""
    request = await provider.begin_authorization(redirect_uri, login_hint=address)
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file)) as browser:
        params = await provider_answer(browser, request.url, redirect_uri)
    assert params["state"] == request.state
    return await provider.complete_authorization(request.flow, params, redirect_uri)


def add_mailbox(control: httpx.Client, provider: str, address: str) -> str:
    r = control.post("/mailboxes", json={"provider": provider, "address": address, "name": "Test User"})
    assert r.status_code == 201, r.text
    return address


def mailbox_messages(control: httpx.Client, address: str, folder: str | None = None) -> list[dict[str, Any]]:
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


def owner_sends(control: httpx.Client, address: str, **fields: Any) -> dict[str, Any]:
    r = control.post(f"/mailboxes/{address}/send", json=fields)
    assert r.status_code == 201, r.text
    return r.json()


def add_fault(control: httpx.Client, **spec: Any) -> None:
    r = control.post("/faults", json=spec)
    assert r.status_code == 201, r.text
