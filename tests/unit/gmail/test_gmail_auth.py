"""Google OAuth: the authorization URL (PKCE S256), callback checks, code redemption,
refresh through google-auth (error mapping), revocation. Endpoints are in-memory:
httpx's MockTransport for our own calls, a requests adapter under google-auth."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import requests
from requests.adapters import BaseAdapter

from sync_engine.domain import AuthRevokedError, ProviderError
from sync_engine.providers.gmail.auth import AuthorizationFailedError, GoogleAuth, make_requests_session, pkce_pair

AUTH_URI = "https://accounts.test/o/oauth2/v2/auth"
TOKEN_URI = "https://oauth2.test/token"
REVOKE_URI = "https://oauth2.test/revoke"
REDIRECT = "https://crm.test/oauth/gmail/callback"


class TokenAdapter(BaseAdapter):
    """A requests adapter answering the token endpoint with canned JSON."""

    def __init__(self, status: int, payload: dict) -> None:
        super().__init__()
        self.status, self.payload, self.forms = status, payload, []

    def send(self, request, **kwargs):
        self.forms.append({k: v[0] for k, v in parse_qs(request.body if isinstance(request.body, str) else request.body.decode()).items()})
        response = requests.Response()
        response.status_code = self.status
        response._content = json.dumps(self.payload).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass


def auth(*, adapter: TokenAdapter | None = None, handler=None) -> GoogleAuth:
    session = None
    if adapter is not None:
        session = requests.Session()
        session.mount("https://", adapter)
    return GoogleAuth(
        auth_uri=AUTH_URI, token_uri=TOKEN_URI, revoke_uri=REVOKE_URI, client_id="cid.apps.googleusercontent.com",
        client_secret="shh", ca_bundle=None, session=session,
        http_transport=httpx.MockTransport(handler) if handler else None,
    )


def test_pkce_pair_is_s256():
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected


def test_authorization_url():
    request = auth().begin(REDIRECT, "Alice@Gmail.Test")
    parts = urlsplit(request.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == AUTH_URI
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["client_id"] == "cid.apps.googleusercontent.com"
    assert q["redirect_uri"] == REDIRECT
    assert q["response_type"] == "code"
    assert q["scope"].split() == ["https://www.googleapis.com/auth/gmail.modify", "openid", "email", "profile"]
    assert q["access_type"] == "offline" and q["prompt"] == "consent"
    assert q["login_hint"] == "Alice@Gmail.Test"
    assert q["state"] == request.state == request.flow["state"]
    assert q["code_challenge_method"] == "S256"
    digest = hashlib.sha256(request.flow["code_verifier"].encode()).digest()
    assert q["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert request.flow["code_verifier"] not in request.url
    assert "login_hint" not in auth().begin(REDIRECT, None).url


async def test_code_redemption_sends_the_verifier_and_returns_tokens():
    forms = []

    def handler(request):
        forms.append({k: v[0] for k, v in parse_qs(request.content.decode()).items()})
        return httpx.Response(200, json={"access_token": "at", "refresh_token": "rt", "expires_in": 3599,
                                         "scope": "openid https://www.googleapis.com/auth/gmail.modify email",
                                         "token_type": "Bearer"})

    client = auth(handler=handler)
    request = client.begin(REDIRECT, None)
    tokens = await client.complete(request.flow, {"code": "c0de", "state": request.state}, REDIRECT)
    assert (tokens.access_token, tokens.refresh_token) == ("at", "rt")
    assert tokens.expires_at > datetime.now(UTC) + timedelta(minutes=55)
    (form,) = forms
    assert form == {"grant_type": "authorization_code", "code": "c0de", "redirect_uri": REDIRECT,
                    "client_id": "cid.apps.googleusercontent.com", "client_secret": "shh",
                    "code_verifier": request.flow["code_verifier"]}


async def test_consent_without_the_gmail_scope_is_refused():
    def handler(request):
        return httpx.Response(200, json={"access_token": "at", "refresh_token": "rt", "expires_in": 3599,
                                         "scope": "openid email"})

    client = auth(handler=handler)
    request = client.begin(REDIRECT, None)
    with pytest.raises(AuthorizationFailedError):
        await client.complete(request.flow, {"code": "c", "state": request.state}, REDIRECT)


@pytest.mark.parametrize(
    "params, redirect",
    [
        ({"code": "c", "state": "wrong"}, REDIRECT),
        ({"code": "c"}, REDIRECT),
        ({"error": "access_denied", "state": None}, REDIRECT),
        ({"state": None}, REDIRECT),
        ({"code": "c", "state": None}, "https://other.test/cb"),
    ],
)
async def test_bad_callbacks_are_refused_without_calling_google(params, redirect):
    def handler(request):  # pragma: no cover - reaching it fails the test
        raise AssertionError("the token endpoint must not be called")

    client = auth(handler=handler)
    request = client.begin(REDIRECT, None)
    params = {k: (request.state if v is None else v) for k, v in params.items()}
    with pytest.raises(AuthorizationFailedError):
        await client.complete(request.flow, params, redirect)


async def test_invalid_code_is_refused():
    client = auth(handler=lambda r: httpx.Response(400, json={"error": "invalid_grant", "error_description": "Bad Request"}))
    request = client.begin(REDIRECT, None)
    with pytest.raises(AuthorizationFailedError):
        await client.complete(request.flow, {"code": "c", "state": request.state}, REDIRECT)


async def test_refresh_through_google_auth():
    adapter = TokenAdapter(200, {"access_token": "at-2", "expires_in": 3599, "token_type": "Bearer",
                                 "scope": "https://www.googleapis.com/auth/gmail.modify"})
    tokens = await auth(adapter=adapter).refresh("rt-1")
    assert tokens.access_token == "at-2"
    assert tokens.refresh_token == "rt-1"  # Google does not rotate it; the old one stays
    assert tokens.expires_at.tzinfo is not None and tokens.expires_at > datetime.now(UTC) + timedelta(minutes=55)
    (form,) = adapter.forms
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "rt-1"
    assert form["client_id"] == "cid.apps.googleusercontent.com" and form["client_secret"] == "shh"


async def test_invalid_grant_means_revoked():
    adapter = TokenAdapter(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    with pytest.raises(AuthRevokedError):
        await auth(adapter=adapter).refresh("rt-1")


async def test_other_refresh_failures_are_provider_errors():
    adapter = TokenAdapter(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
    with pytest.raises(ProviderError) as info:
        await auth(adapter=adapter).refresh("rt-1")
    assert not isinstance(info.value, AuthRevokedError)


async def test_revoke_is_best_effort():
    seen = []

    def ok(request):
        seen.append(parse_qs(request.content.decode()))
        return httpx.Response(200)

    assert await auth(handler=ok).revoke("rt-1") is True and seen == [{"token": ["rt-1"]}]
    assert await auth(handler=lambda r: httpx.Response(400, json={"error": "invalid_token"})).revoke("x") is True

    def down(request):
        raise httpx.ConnectError("down")

    assert await auth(handler=down).revoke("x") is False


def test_pinned_session_ignores_the_environment_bundle(monkeypatch, tmp_path):
    bundle = tmp_path / "ours.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/somewhere/else.pem")
    session = make_requests_session(str(bundle))
    merged = session.merge_environment_settings("https://oauth2.test/token", {}, None, None, None)
    assert merged["verify"] == str(bundle)
