"""Fixtures for the Google half of the sandbox: OAuth sign-in (code + PKCE over
real HTTPS), Gmail clients, and a discovery-document validator that every
Gmail response in these tests goes through.

The session-wide server, the `control` client (reset before each test) and
the plain-HTTP `receiver` come from tests/sandbox/conftest.py."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from sandbox import SandboxServer
from tests.sandbox.google.discovery_schema import Discovery

CLIENT_ID = "1234567890-sandbox.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-sandbox-secret"
REDIRECT_URI = "http://127.0.0.1:8000/oauth/gmail/callback"
MODIFY = "https://www.googleapis.com/auth/gmail.modify"
FULL = "https://mail.google.com/"
SCOPES = ("openid", "email", MODIFY)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class GoogleOAuth:
    """The web-server flow as an app runs it, the browser played by httpx."""

    server: SandboxServer

    @property
    def auth_uri(self) -> str:
        return f"{self.server.base_url}/o/oauth2/v2/auth"

    @property
    def token_uri(self) -> str:
        return f"{self.server.base_url}/token"

    def authorize_url(self, challenge: str | None = None, **params: str) -> str:
        query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
                 "scope": " ".join(SCOPES), "state": "st-42", "access_type": "offline", "prompt": "consent",
                 "include_granted_scopes": "true", **params}
        if challenge:
            query.update(code_challenge=challenge, code_challenge_method="S256")
        return f"{self.auth_uri}?{urlencode(query)}"

    def redirect(self, url: str) -> dict[str, str]:
        response = httpx.get(url, verify=self.server.ssl_context(), follow_redirects=False)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(REDIRECT_URI + "?"), location
        return dict(parse_qsl(urlsplit(location).query))

    def token(self, **form: str) -> httpx.Response:
        return httpx.post(self.token_uri, data=form, verify=self.server.ssl_context())

    def sign_in(self, address: str, scopes: tuple[str, ...] = SCOPES, **params: str) -> dict[str, Any]:
        verifier, challenge = pkce()
        query = self.redirect(self.authorize_url(challenge, login_hint=address, scope=" ".join(scopes), **params))
        assert query["state"] == "st-42" and "code" in query, query
        response = self.token(grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT_URI,
                              client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code_verifier=verifier)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture()
def google_oauth(sandbox_server: SandboxServer) -> GoogleOAuth:
    return GoogleOAuth(sandbox_server)


@pytest.fixture(scope="session")
def discovery() -> Discovery:
    return Discovery()


# The discovery schema of each Gmail method's answer, by (verb, path under users/me).
RESPONSE_SCHEMAS = [
    ("GET", r"/profile", "Profile"),
    ("GET", r"/messages", "ListMessagesResponse"),
    ("GET", r"/messages/[^/]+", "Message"),
    ("GET", r"/messages/[^/]+/attachments/[^/]+", "MessagePartBody"),
    ("POST", r"/messages/send", "Message"),
    ("POST", r"/messages/[^/]+/(modify|trash|untrash)", "Message"),
    ("GET", r"/threads", "ListThreadsResponse"),
    ("GET", r"/threads/[^/]+", "Thread"),
    ("GET", r"/history", "ListHistoryResponse"),
    ("GET", r"/labels", "ListLabelsResponse"),
    ("POST", r"/watch", "WatchResponse"),
]


def response_schema(method: str, path: str) -> str:
    path = path.split("?")[0]
    for verb, pattern, schema in RESPONSE_SCHEMAS:
        if verb == method.upper() and re.fullmatch(pattern, path):
            return schema
    raise AssertionError(f"no discovery schema known for {method} {path}")


@dataclass
class Gmail:
    """A sandbox Gmail mailbox signed in through the OAuth flow. Every 200
    answer from `call` is validated against the discovery schema of the
    method (or the one named)."""

    address: str
    tokens: dict[str, Any]
    server: SandboxServer
    discovery: Discovery
    client: httpx.Client

    def call(self, method: str, path: str, schema: str | None = None, *, status: int = 200, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code == status, (response.status_code, response.text)
        if status == 204:
            assert response.content == b""
            return None
        body = response.json()
        if status == 200:
            self.discovery.validate(body, schema or response_schema(method, path))
        return body

    def get(self, path: str, schema: str | None = None, **kwargs: Any) -> Any:
        return self.call("GET", path, schema, **kwargs)

    def post(self, path: str, schema: str | None = None, **kwargs: Any) -> Any:
        return self.call("POST", path, schema, **kwargs)

    def message(self, message_id: str, fmt: str = "full", **params: Any) -> dict[str, Any]:
        return self.get(f"/messages/{message_id}", "Message", params={"format": fmt, **params})

    def profile(self) -> dict[str, Any]:
        return self.get("/profile", "Profile")


@pytest.fixture()
def gmail(sandbox_server: SandboxServer, control: httpx.Client, google_oauth: GoogleOAuth,
          discovery: Discovery) -> Iterator[Callable[..., Gmail]]:
    clients: list[httpx.Client] = []

    def make(address: str = "sam@gmail.test", name: str = "Sam Seller", scopes: tuple[str, ...] = SCOPES) -> Gmail:
        created = control.post("/mailboxes", json={"provider": "gmail", "address": address, "name": name})
        assert created.status_code in (200, 201), created.text
        tokens = google_oauth.sign_in(address, scopes)
        client = httpx.Client(
            base_url=f"{sandbox_server.base_url}/gmail/v1/users/me",
            verify=sandbox_server.ssl_context(),
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            timeout=20,
        )
        clients.append(client)
        return Gmail(address, tokens, sandbox_server, discovery, client)

    yield make
    for client in clients:
        client.close()


def inbound(control: httpx.Client, address: str, **fields: Any) -> dict[str, Any]:
    """Mail from outside arrives (control API); returns the sandbox's summary."""
    fields.setdefault("from", "Carol Contact <carol@example.com>")
    fields.setdefault("subject", "Hello")
    fields.setdefault("text", "Hi there")
    response = control.post(f"/mailboxes/{address}/inbound", json=fields)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture()
def deliver(control: httpx.Client) -> Callable[..., dict[str, Any]]:
    def send(address: str, **fields: Any) -> dict[str, Any]:
        return inbound(control, address, **fields)

    return send
