"""Sign-in (authorization code + PKCE), token refresh, revocation against the sandbox's
Google OAuth endpoints."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sync_engine.domain import AuthRevokedError, TokenSet
from sync_engine.providers.gmail.auth import GMAIL_SCOPE, AuthorizationFailedError


async def test_sign_in_with_login_hint(world, mailbox):
    account = await world.sign_in(mailbox)
    assert account.address == mailbox
    assert account.display_name == "Test User"  # the ID token's name claim (profile scope)
    assert account.tokens.access_token and account.tokens.refresh_token
    assert GMAIL_SCOPE in account.tokens.scope.split()
    assert account.tokens.expires_at > datetime.now(UTC) + timedelta(minutes=5)
    token_calls = world.requests(None, "/token")
    assert token_calls and token_calls[-1]["status"] == 200
    profile = world.requests(mailbox, "/gmail/v1/users/me/profile")
    assert [r["status"] for r in profile] == [200]


async def test_pkce_verifier_is_checked_by_google(world, provider, mailbox):
    request = await provider.begin_authorization(world.redirect_uri, login_hint=mailbox)
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=world.sandbox.ca_file)) as browser:
        response = await browser.get(request.url)
    assert response.status_code == 302
    params = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    tampered = {**request.flow, "code_verifier": "x" * 64}
    with pytest.raises(AuthorizationFailedError):
        await provider.complete_authorization(tampered, params, world.redirect_uri)


async def test_a_callback_with_another_state_is_refused(world, provider, mailbox):
    first = await provider.begin_authorization(world.redirect_uri, login_hint=mailbox)
    second = await provider.begin_authorization(world.redirect_uri, login_hint=mailbox)
    with pytest.raises(AuthorizationFailedError):
        await provider.complete_authorization(first.flow, {"code": "4/0Aforged", "state": second.state},
                                              world.redirect_uri)


async def test_expired_access_token_is_refreshed_and_persisted(connected, world, control, refreshed):
    account, client = connected
    control.post(f"/mailboxes/{account.address}/expire-tokens")
    message = world.inbound(account.address, subject="after refresh", text="x")
    got = await client.get_message(message["id"])
    assert got.subject == "after refresh"
    assert len(refreshed.calls) == 1
    fresh = refreshed.calls[0]
    assert fresh.access_token != account.tokens.access_token
    assert fresh.refresh_token == account.tokens.refresh_token  # Google keeps the refresh token
    assert client.api.tokens.access_token == fresh.access_token


async def test_stale_expiry_refreshes_before_the_call(provider, world, mailbox, refreshed):
    account = await world.sign_in(mailbox)
    stale = TokenSet(account.tokens.access_token, account.tokens.refresh_token,
                     datetime.now(UTC) - timedelta(seconds=5), account.tokens.scope)
    client = provider.client(stale, refreshed)
    try:
        await client.watch("", "")
    finally:
        await client.aclose()
    assert len(refreshed.calls) == 1
    gmail_calls = world.requests(mailbox, "/gmail/v1/users/me/watch")
    assert [r["status"] for r in gmail_calls] == [200]  # no 401 first: refreshed ahead of time


async def test_disconnect_revokes_the_grant(provider, world, mailbox, refreshed):
    account = await world.sign_in(mailbox)
    await provider.revoke(account.tokens)
    assert [r["status"] for r in world.requests(None, "/revoke")][-1] == 200
    client = provider.client(account.tokens, refreshed)
    try:
        with pytest.raises(AuthRevokedError):
            await client.watch("", "")
    finally:
        await client.aclose()
    await provider.revoke(account.tokens)  # a second revoke is harmless
