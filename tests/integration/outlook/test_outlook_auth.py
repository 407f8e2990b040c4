"""Sign-in (auth code + PKCE via msal), token refresh and revocation, against the sandbox."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import httpx
import pytest

from sync_engine.domain import AuthRevokedError
from sync_engine.providers.outlook.auth import AuthorizationFailedError
from tests.support.browser import provider_answer

REDIRECT_URI = "https://app.emailsync.test/oauth/outlook/callback"


async def test_sign_in_with_login_hint(world, mailbox):
    account = await world.sign_in(mailbox)
    assert account.address == mailbox.lower()
    assert account.display_name == "Test User"
    assert account.tokens.access_token and account.tokens.refresh_token
    assert account.tokens.expires_at is not None and account.tokens.expires_at > datetime.now(UTC)
    assert "Mail.ReadWrite" in (account.tokens.scope or "")


async def test_authorization_url_carries_pkce_and_hint(provider, mailbox):
    request = await provider.begin_authorization(REDIRECT_URI, login_hint=mailbox)
    url = httpx.URL(request.url)
    assert url.params["code_challenge_method"] == "S256" and url.params["code_challenge"]
    assert url.params["login_hint"] == mailbox
    assert url.params["response_mode"] == "form_post"  # the code never sits in a URL
    assert set(url.params["scope"].split()) >= {"Mail.ReadWrite", "Mail.Send", "User.Read", "offline_access"}
    assert request.flow["code_verifier"] and request.flow["state"] == request.state


async def test_a_forged_state_is_refused(provider, world, mailbox):
    request = await provider.begin_authorization(REDIRECT_URI, login_hint=mailbox)
    async with httpx.AsyncClient(verify=world.ssl) as browser:
        params = await provider_answer(browser, request.url, REDIRECT_URI)
    params["state"] = "forged"
    with pytest.raises(AuthorizationFailedError):
        await provider.complete_authorization(request.flow, params, REDIRECT_URI)


async def test_denied_consent_is_an_authorization_failure(provider, mailbox):
    request = await provider.begin_authorization(REDIRECT_URI, login_hint=mailbox)
    params = {"error": "access_denied", "state": request.state}
    with pytest.raises(AuthorizationFailedError):
        await provider.complete_authorization(request.flow, params, REDIRECT_URI)


async def test_an_environment_ca_bundle_does_not_override_ours(world, mailbox, tmp_path, monkeypatch):
    # requests lets REQUESTS_CA_BUNDLE override msal's verify=; the adapter pins its own.
    bogus = tmp_path / "other-ca.pem"
    bogus.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bogus))
    account = await world.sign_in(mailbox)
    assert account.address == mailbox.lower()
    assert os.environ["REQUESTS_CA_BUNDLE"] == str(bogus)


async def test_expired_access_token_is_refreshed_persisted_and_used(connected, control, refreshed, world):
    account, client = connected
    assert control.delete("/requests").status_code == 204
    r = control.post(f"/mailboxes/{account.address}/expire-tokens")
    assert r.status_code == 200 and r.json()["expired"] >= 1
    # A Graph call with the now-invalid token: 401 -> refresh -> persisted -> retried.
    pages = [page async for page in client.sync(None)]
    assert pages and pages[-1].complete
    assert len(refreshed.calls) == 1
    fresh = refreshed.calls[0]
    assert fresh.access_token != account.tokens.access_token
    assert fresh.refresh_token
    assert client.graph.tokens.access_token == fresh.access_token
    statuses = [row["status"] for row in world.requests(None, "/messages/delta")]
    assert 401 in statuses and statuses[-1] == 200


async def test_refresh_with_a_revoked_token_directly(provider, world, mailbox, control):
    account = await world.sign_in(mailbox)
    fresh = await provider.auth.refresh(account.tokens.refresh_token)
    assert fresh.access_token != account.tokens.access_token
    control.post(f"/mailboxes/{mailbox}/revoke")
    with pytest.raises(AuthRevokedError):
        await provider.auth.refresh(fresh.refresh_token)
