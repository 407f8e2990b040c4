"""The OAuth redirect target: outcome back to the app, nothing from the provider echoed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest

from sync_engine.domain import Provider
from tests.integration.api.conftest import Api
from tests.integration.api.fakes import Calls, patch_service


@dataclass
class Outcome:
    return_to: str | None
    connection_id: uuid.UUID | None
    error: str | None


def use_outcome(monkeypatch: pytest.MonkeyPatch, outcome: Outcome) -> Calls:
    calls = Calls()
    patch_service(monkeypatch, "sync_engine.services.connections", complete_connection=calls.recorder("complete", outcome))
    return calls


async def test_connected_redirects_back_to_the_app(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = use_outcome(monkeypatch, Outcome("https://app.test/settings?tab=email#top", uuid.uuid4(), None))
    response = await api.http.get("/oauth/outlook/callback", params={"code": "SECRET-CODE", "state": "st"})
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path, location.fragment) == ("https", "app.test", "/settings", "top")
    assert parse_qs(location.query) == {"tab": ["email"], "emailConnection": ["connected"]}
    assert "SECRET-CODE" not in response.headers["location"]
    (_, _, kwargs), = calls.calls
    assert kwargs["provider"] is Provider.OUTLOOK
    assert kwargs["params"] == {"code": "SECRET-CODE", "state": "st"}


async def test_failure_redirects_with_a_reason(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    use_outcome(monkeypatch, Outcome("https://app.test/settings", None, "access_denied\r\n<script>"))
    response = await api.http.get("/oauth/gmail/callback", params={"error": "access_denied", "state": "st"})
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["emailConnection"] == ["error"]
    assert query["reason"] == ["access_deniedscript"]


async def test_without_return_to_a_small_page(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    use_outcome(monkeypatch, Outcome(None, uuid.uuid4(), None))
    response = await api.http.get("/oauth/outlook/callback", params={"code": "SECRET-CODE", "state": "st"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "connected" in response.text.lower()
    assert "SECRET-CODE" not in response.text

    use_outcome(monkeypatch, Outcome(None, None, "<b>invalid_grant</b>"))
    response = await api.http.get("/oauth/outlook/callback", params={"code": "SECRET-CODE", "state": "st"})
    assert response.status_code == 400
    assert "failed" in response.text.lower()
    assert "<b>" not in response.text and "SECRET-CODE" not in response.text


async def test_unknown_provider_is_404(api: Api) -> None:
    response = await api.http.get("/oauth/yahoo/callback", params={"code": "c"})
    assert response.status_code == 404


async def test_form_post_answer(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Microsoft's response_mode=form_post: the code arrives in a POSTed form, not the URL."""
    calls = use_outcome(monkeypatch, Outcome("https://app.test/settings", uuid.uuid4(), None))
    response = await api.http.post("/oauth/outlook/callback",
                                   data={"code": "SECRET-CODE", "state": "st", "session_state": "s1"})
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query) == {"emailConnection": ["connected"]}
    (_, _, kwargs), = calls.calls
    assert kwargs["params"] == {"code": "SECRET-CODE", "state": "st", "session_state": "s1"}


async def test_a_post_that_is_not_a_sign_in_answer_is_refused(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = use_outcome(monkeypatch, Outcome(None, uuid.uuid4(), None))
    as_json = await api.http.post("/oauth/outlook/callback", json={"code": "c", "state": "st"})
    too_big = await api.http.post("/oauth/outlook/callback", data={"code": "c" * 20_000, "state": "st"})
    assert (as_json.status_code, too_big.status_code) == (400, 400)
    assert calls.calls == []
