"""Fixtures for the sandbox's own tests: one HTTPS sandbox per session, reset
before every test; real msal sign-ins; a tiny webhook receiver on plain HTTP."""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msal
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sandbox import SandboxServer
from sandbox.server import bind_socket

CLIENT_ID = "emailsync-test-client"
CLIENT_SECRET = "test-secret"
REDIRECT_URI = "http://127.0.0.1:8000/oauth/outlook/callback"
SCOPES = ["Mail.ReadWrite", "Mail.Send", "User.Read"]


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
        # msal (requests) reads REQUESTS_CA_BUNDLE; it overrides msal's verify=.
        os.environ["REQUESTS_CA_BUNDLE"] = server.ca_file
        os.environ["SSL_CERT_FILE"] = server.ca_file
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture()
def control(sandbox_server: SandboxServer) -> Iterator[httpx.Client]:
    with sandbox_server.control_client(timeout=15) as client:
        assert client.post("/reset").status_code == 204
        yield client


def msal_app(server: SandboxServer, **kwargs: Any) -> msal.ConfidentialClientApplication:
    kwargs.setdefault("instance_discovery", False)
    return msal.ConfidentialClientApplication(CLIENT_ID, client_credential=CLIENT_SECRET, authority=server.authority, **kwargs)


def follow_authorize(server: SandboxServer, auth_uri: str) -> dict[str, str]:
    """Play the browser: GET the authorize URL and read the redirect's query."""
    response = httpx.get(auth_uri, verify=server.ssl_context(), follow_redirects=False)
    assert response.status_code == 302, response.text
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


def sign_in(server: SandboxServer, address: str, **msal_kwargs: Any) -> dict[str, Any]:
    """The auth-code + PKCE flow with login_hint, through real msal."""
    app = msal_app(server, **msal_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # msal recommends form_post; the app uses query
        flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, login_hint=address)
    result = app.acquire_token_by_auth_code_flow(flow, follow_authorize(server, flow["auth_uri"]))
    assert "access_token" in result, result
    return result


@dataclass
class Identity:
    """Sign-in helpers for tests (a fixture, so test modules need not import conftest)."""

    server: SandboxServer
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    redirect_uri: str = REDIRECT_URI
    scopes: tuple[str, ...] = tuple(SCOPES)

    def msal_app(self, **kwargs: Any) -> msal.ConfidentialClientApplication:
        return msal_app(self.server, **kwargs)

    def follow_authorize(self, auth_uri: str) -> dict[str, str]:
        return follow_authorize(self.server, auth_uri)

    def sign_in(self, address: str, **msal_kwargs: Any) -> dict[str, Any]:
        return sign_in(self.server, address, **msal_kwargs)


@pytest.fixture()
def identity(sandbox_server: SandboxServer) -> Identity:
    return Identity(sandbox_server)


@dataclass
class Outlook:
    """A sandbox Outlook mailbox signed in through msal."""

    address: str
    tokens: dict[str, Any]
    server: SandboxServer

    @property
    def user_id(self) -> str:
        return self.tokens["id_token_claims"]["oid"]

    def graph(self, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server.graph_base_url,
            verify=self.server.ssl_context(),
            headers={"Authorization": f"Bearer {self.tokens['access_token']}", **headers},
            timeout=20,
        )


@pytest.fixture()
def outlook(sandbox_server: SandboxServer, control: httpx.Client) -> Callable[..., Outlook]:
    def make(address: str = "alice@contoso.test", name: str = "Alice Smith") -> Outlook:
        assert control.post("/mailboxes", json={"provider": "outlook", "address": address, "name": name}).status_code in (200, 201)
        return Outlook(address, sign_in(sandbox_server, address), sandbox_server)

    return make


# -- webhook receiver --------------------------------------------------------------


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Records every request. Paths decide the behaviour:
    /ok     echoes validationToken, 202 for notifications
    /wrong  answers validation with a different body
    /flaky  500 for the first notification POST, then 202
    """

    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    flaky_failures: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def clear(self) -> None:
        with self._cond:
            self.received.clear()
            self.flaky_failures = 0

    def record(self, item: Received) -> None:
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()

    def notifications(self, path: str | None = None) -> list[Received]:
        with self._cond:
            return [r for r in self.received if "validationToken" not in r.query and (path is None or r.path == path)]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.received)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"webhook receiver timed out; got {self.received}")
                self._cond.wait(remaining)
            return list(self.received)


def _receiver_app(receiver: WebhookReceiver) -> Starlette:
    async def hook(request: Request) -> Response:
        item = Received(request.url.path, dict(request.query_params), dict(request.headers), await request.body())
        receiver.record(item)
        token = request.query_params.get("validationToken")
        kind = request.path_params["kind"]
        if token is not None:
            if kind == "wrong":
                return PlainTextResponse("not-the-token")
            return PlainTextResponse(token)
        if kind == "flaky" and receiver.flaky_failures == 0:
            receiver.flaky_failures += 1
            return Response(status_code=500)
        return Response(status_code=202)

    return Starlette(routes=[Route("/{kind}", hook, methods=["POST"])])


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    sock = bind_socket("127.0.0.1", 0)
    receiver.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(_receiver_app(receiver), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield receiver
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture()
def receiver(webhook_receiver: WebhookReceiver) -> WebhookReceiver:
    webhook_receiver.clear()
    return webhook_receiver
