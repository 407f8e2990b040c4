"""Provider push endpoints: the Graph validation handshake, fast acknowledgement, rejection."""

from __future__ import annotations

import pytest

from sync_engine.domain import Provider
from sync_engine.providers.base import PushRejected
from tests.integration.api.conftest import Api
from tests.integration.api.fakes import Calls, patch_service


async def test_graph_validation_handshake(api: Api) -> None:
    response = await api.http.post(
        "/webhooks/graph?validationToken=Validation%3A%20Testing%20client%20application%20reachability%20%3Cb%3E"
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Validation: Testing client application reachability <b>"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_graph_notification_is_accepted(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "notifications", accept_push=calls.recorder("accept_push", 1))
    body = b'{"value":[{"subscriptionId":"s1","clientState":"secret","changeType":"created"}]}'
    response = await api.http.post("/webhooks/graph?tenant=x", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 202
    (_, args, _), = calls.calls
    assert args[0] is Provider.OUTLOOK
    assert args[1]["content-type"] == "application/json"
    assert args[2] == {"tenant": "x"}
    assert args[3] == body


async def test_graph_notification_rejected_is_400(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "notifications", accept_push=calls.recorder("accept_push", error=PushRejected("bad clientState")))
    response = await api.http.post("/webhooks/graph", content=b'{"value":[]}')
    assert response.status_code == 400
    assert "clientState" not in response.text


async def test_gmail_push(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "notifications", accept_push=calls.recorder("accept_push", 1))
    body = b'{"message":{"data":"eyJlbWFpbEFkZHJlc3MiOiJhQGIuY29tIiwiaGlzdG9yeUlkIjoxfQ=="},"subscription":"s"}'
    response = await api.http.post("/webhooks/gmail", content=body, headers={"Authorization": "Bearer oidc"})
    assert response.status_code == 202
    (_, args, _), = calls.calls
    assert args[0] is Provider.GMAIL
    assert args[1]["authorization"] == "Bearer oidc"


async def test_gmail_push_rejected_is_401(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "notifications", accept_push=calls.recorder("accept_push", error=PushRejected("bad jwt")))
    response = await api.http.post("/webhooks/gmail", content=b"{}")
    assert response.status_code == 401


async def test_oversized_push_is_413(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "notifications", accept_push=calls.recorder("accept_push", 1))
    response = await api.http.post("/webhooks/graph", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert calls.calls == []


async def test_webhooks_only_take_post(api: Api) -> None:
    assert (await api.http.get("/webhooks/graph")).status_code == 405
    assert (await api.http.get("/webhooks/gmail")).status_code == 405
