"""The OAuth redirect target: a flow token back to the app (never "connected"), only to
allowed origins, nothing from the provider echoed; and the API's own ``/connected`` page."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from db.base import utcnow
from db.models import EmailConnection, OAuthFlow
from sync_engine.crypto import sha256_hex
from sync_engine.domain import Provider
from sync_engine.services.connections import ProviderAnswer
from tests.integration.api.conftest import Api
from tests.integration.api.fakes import Calls, patch_service

TOKEN = "Flow-token_" + "x" * 32


def use_answer(monkeypatch: pytest.MonkeyPatch, api: Api, answer: ProviderAnswer) -> Calls:
    calls = Calls()
    patch_service(monkeypatch, api, "connections", accept_provider_answer=calls.recorder("accept", answer))
    return calls


@pytest.fixture
def app_origin(api: Api, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(api.settings, "allowed_origins", ["https://app.test"])
    return "https://app.test"


async def test_signed_in_redirects_back_to_the_app_with_a_flow_token(
        api: Api, monkeypatch: pytest.MonkeyPatch, app_origin: str) -> None:
    calls = use_answer(monkeypatch, api, ProviderAnswer(f"{app_origin}/settings?tab=email&emailConnection=connected#top",
                                                   TOKEN, None))
    response = await api.http.get("/oauth/outlook/callback", params={"code": "SECRET-CODE", "state": "st"})
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path, location.fragment) == ("https", "app.test", "/settings", "top")
    # The app's own parameters stay; ours are replaced: a token to confirm, never "connected".
    assert parse_qs(location.query) == {"tab": ["email"], "emailConnectionFlow": [TOKEN]}
    assert "SECRET-CODE" not in response.headers["location"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    (_, _, kwargs), = calls.calls
    assert kwargs["provider"] is Provider.OUTLOOK
    assert kwargs["params"] == {"code": "SECRET-CODE", "state": "st"}


async def test_failure_redirects_with_a_reason(api: Api, monkeypatch: pytest.MonkeyPatch, app_origin: str) -> None:
    use_answer(monkeypatch, api, ProviderAnswer(f"{app_origin}/settings", None, "access_denied\r\n<script>"))
    response = await api.http.get("/oauth/gmail/callback", params={"error": "access_denied", "state": "st"})
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query == {"emailConnection": ["error"], "reason": ["access_deniedscript"]}


async def test_the_api_s_own_origin_is_always_a_valid_return(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    use_answer(monkeypatch, api, ProviderAnswer(f"{api.settings.public_base_url}/connected", TOKEN, None))
    response = await api.http.get("/oauth/gmail/callback", params={"code": "c", "state": "st"})
    assert response.status_code == 303
    assert response.headers["location"] == f"{api.settings.public_base_url}/connected?emailConnectionFlow={TOKEN}"


@pytest.mark.parametrize("return_to", [
    "https://evil.example/settings",
    "https://app.test@evil.example/",
    "https://app.test\\@evil.example/",
    "//evil.example/",
    "javascript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "https://app.test.evil.example/",
    "http://app.test/settings",
    "https://аpp.test/",
    "https://app.test/\r\nLocation: https://evil.example/",
])
async def test_a_return_address_outside_the_allowed_origins_is_never_followed(
        api: Api, monkeypatch: pytest.MonkeyPatch, app_origin: str, return_to: str) -> None:
    """Defence in depth: a stored return address is checked again before redirecting (the
    settings may have changed since, or the row was tampered with)."""
    use_answer(monkeypatch, api, ProviderAnswer(return_to, TOKEN, None))
    response = await api.http.get("/oauth/outlook/callback", params={"code": "c", "state": "st"})
    assert not response.is_redirect and "location" not in response.headers
    assert response.status_code == 400 and "not connected" in response.text
    assert TOKEN not in response.text  # the token is not handed to anyone


async def test_a_stored_bad_return_address_is_not_followed_end_to_end(api: Api) -> None:
    """The same, through the real service: a flow row holding an outside address."""
    state = secrets.token_urlsafe(16)
    async with api.rt.sessions.begin() as session:
        session.add(OAuthFlow(state=state, sub_account_id=api.seed.sub_a, user_id=api.seed.user_a, provider="gmail",
                              flow_ciphertext=api.rt.secrets.encrypt_json({}), return_to="https://evil.example/x",
                              expires_at=utcnow() + timedelta(minutes=5)))
    connections_before = await connection_count(api)
    response = await api.http.get("/oauth/gmail/callback", params={"code": "SECRET-CODE", "state": state})
    assert (response.status_code, response.is_redirect) == (400, False)
    assert "evil.example" not in response.text and "SECRET-CODE" not in response.text
    async with api.rt.sessions() as session:
        row = await session.get(OAuthFlow, state)
    assert row is not None and row.flow_token_hash is not None  # answered, its token never shown: it just expires
    assert await connection_count(api) == connections_before


async def connection_count(api: Api) -> int:
    async with api.rt.sessions() as session:
        return await session.scalar(select(func.count()).select_from(EmailConnection))


async def test_the_callback_connects_nothing_and_parks_the_answer_encrypted(api: Api) -> None:
    state = secrets.token_urlsafe(16)
    async with api.rt.sessions.begin() as session:
        session.add(OAuthFlow(state=state, sub_account_id=api.seed.sub_a, user_id=api.seed.user_a2, provider="outlook",
                              flow_ciphertext=api.rt.secrets.encrypt_json({}), return_to=None,
                              expires_at=utcnow() + timedelta(minutes=5)))
    connections_before = await connection_count(api)
    response = await api.http.post("/oauth/outlook/callback", data={"code": "SECRET-CODE", "state": state})
    assert response.status_code == 200
    assert await connection_count(api) == connections_before
    token = response.text.split('<code id="flow-token">')[1].split("<")[0]
    async with api.rt.sessions() as session:
        row = await session.get(OAuthFlow, state)
    assert row.flow_token_hash == sha256_hex(token)  # only its hash is kept
    assert "SECRET-CODE" not in row.answer_ciphertext
    assert api.rt.secrets.decrypt_json(row.answer_ciphertext)["code"] == "SECRET-CODE"
    assert row.expires_at <= utcnow() + timedelta(minutes=5)
    # A replayed answer (same state) is refused: the state is good for one answer.
    again = await api.http.post("/oauth/outlook/callback", data={"code": "OTHER-CODE", "state": state})
    assert again.status_code == 400 and "unknown_or_expired_state" in again.text


async def test_without_return_to_the_page_says_how_to_finish(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    use_answer(monkeypatch, api, ProviderAnswer(None, TOKEN, None))
    response = await api.http.get("/oauth/outlook/callback", params={"code": "SECRET-CODE", "state": "st"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Nothing is connected yet" in response.text and "Microsoft" in response.text
    assert "completeEmailConnection" in response.text and TOKEN in response.text
    assert "SECRET-CODE" not in response.text
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'nonce-" in csp and "unsafe-inline" not in csp
    assert response.headers["cache-control"] == "no-store" and response.headers["referrer-policy"] == "no-referrer"

    use_answer(monkeypatch, api, ProviderAnswer(None, None, "<b>invalid_grant</b>"))
    response = await api.http.get("/oauth/outlook/callback", params={"code": "SECRET-CODE", "state": "st"})
    assert response.status_code == 400
    assert "not connected" in response.text.lower()
    assert "<b>" not in response.text and "SECRET-CODE" not in response.text


async def test_unknown_provider_is_404(api: Api) -> None:
    response = await api.http.get("/oauth/yahoo/callback", params={"code": "c"})
    assert response.status_code == 404


async def test_form_post_answer(api: Api, monkeypatch: pytest.MonkeyPatch, app_origin: str) -> None:
    """Microsoft's response_mode=form_post: the code arrives in a POSTed form, not the URL."""
    calls = use_answer(monkeypatch, api, ProviderAnswer(f"{app_origin}/settings", TOKEN, None))
    response = await api.http.post("/oauth/outlook/callback",
                                   data={"code": "SECRET-CODE", "state": "st", "session_state": "s1"})
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query) == {"emailConnectionFlow": [TOKEN]}
    (_, _, kwargs), = calls.calls
    assert kwargs["params"] == {"code": "SECRET-CODE", "state": "st", "session_state": "s1"}


async def test_a_post_that_is_not_a_sign_in_answer_is_refused(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = use_answer(monkeypatch, api, ProviderAnswer(None, TOKEN, None))
    as_json = await api.http.post("/oauth/outlook/callback", json={"code": "c", "state": "st"})
    too_big = await api.http.post("/oauth/outlook/callback", data={"code": "c" * 20_000, "state": "st"})
    assert (as_json.status_code, too_big.status_code) == (400, 400)
    assert calls.calls == []


async def test_the_connected_page(api: Api) -> None:
    page = await api.http.get("/connected", params={"emailConnectionFlow": TOKEN})
    assert page.status_code == 200 and "Nothing is connected yet" in page.text and TOKEN in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # The script it runs is the one its CSP nonce names, and the form posts to this API's /graphql.
    nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page.text and 'data-endpoint="/graphql"' in page.text

    # Whatever is not a flow token is not reflected.
    hostile = '"><script>alert(1)</script>'
    page = await api.http.get("/connected", params={"emailConnectionFlow": hostile})
    assert page.status_code == 200 and "<script>alert" not in page.text and "malformed_flow_token" in page.text
    page = await api.http.get("/connected", params={"emailConnection": "error", "reason": "access_denied<img>"})
    assert "access_deniedimg" in page.text and "<img>" not in page.text
    page = await api.http.get("/connected")
    assert page.status_code == 200 and "No sign-in to confirm here" in page.text
