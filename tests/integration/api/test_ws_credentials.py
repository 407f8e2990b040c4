"""A graphql-transport-ws session ends (close 4403) when its credentials do: the token's
``exp`` passes, or its API key is revoked (in this API process or in another one).
Each test waits for the close frame itself, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, aconnect_ws

from api.auth import mint_dev_token
from api.ws_sessions import REVOCATION_POLL_SECONDS
from emailsync.asgi import create_app
from tests.integration.api.conftest import Api, start_server
from tests.integration.api.test_api_keys import REVOKE, create_key

INBOX = "subscription { inboxEvents { type } }"


@asynccontextmanager
async def session(base_url: str, http: httpx.AsyncClient, authorization: str) -> AsyncIterator[AsyncWebSocketSession]:
    """An acknowledged connection with one live subscription."""
    async with aconnect_ws(f"{base_url}/graphql", http, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"authorization": authorization}})
        ack = await ws.receive_json(timeout=5)
        assert ack["type"] == "connection_ack", ack
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": INBOX}})
        yield ws


async def closed_with(ws: AsyncWebSocketSession, timeout: float) -> tuple[int, str, float]:
    """Wait for the server's close frame: (code, reason, seconds waited)."""
    started = time.monotonic()
    with pytest.raises(WebSocketDisconnect) as closed:
        while True:  # nothing else is expected on this connection; events would be skipped
            await ws.receive_json(timeout=timeout)
    return closed.value.code, closed.value.reason or "", time.monotonic() - started


async def still_open(ws: AsyncWebSocketSession) -> None:
    await ws.send_json({"type": "ping"})
    assert (await ws.receive_json(timeout=5)) == {"type": "pong"}


async def test_session_closes_when_the_token_expires(api: Api) -> None:
    ttl = timedelta(seconds=2)
    token = mint_dev_token(api.settings, api.seed.user_a, api.seed.sub_a, "user", ttl=ttl)
    long_lived = f"Bearer {api.token('user_a')}"
    async with (
        session(api.base_url, api.http, f"Bearer {token}") as short,
        session(api.base_url, api.http, long_lived) as other,
    ):
        await still_open(short)
        code, reason, waited = await closed_with(short, timeout=10)
        assert code == 4403 and "expired" in reason
        assert waited <= ttl.total_seconds() + 1  # at its exp, not at some later sweep
        await still_open(other)  # a session with a valid token goes on


async def test_expired_token_within_the_leeway_is_refused(api: Api) -> None:
    # Verification accepts a token up to 30 s past its exp (clock skew); a session would
    # be dead on arrival, so it is refused.
    token = mint_dev_token(api.settings, api.seed.user_a, api.seed.sub_a, "user", ttl=timedelta(seconds=-5))
    assert (await api.post("{ viewer { kind } }", auth=f"Bearer {token}")).status_code == 200
    async with aconnect_ws(f"{api.base_url}/graphql", api.http, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        code, _reason, _ = await closed_with(ws, timeout=5)
        assert code == 4403


async def test_session_closes_when_its_api_key_is_revoked(api: Api) -> None:
    key_id, secret = await create_key(api, "ws revoked here")
    _, kept = await create_key(api, "ws kept")
    async with (
        session(api.base_url, api.http, f"ApiKey {secret}") as ws,
        session(api.base_url, api.http, f"ApiKey {kept}") as other,
    ):
        await still_open(ws)
        payload = (await api.data(REVOKE, {"id": key_id}, as_="admin_a"))["revokeApiKey"]
        assert payload["userErrors"] == []
        code, reason, waited = await closed_with(ws, timeout=5)
        assert code == 4403 and "revoked" in reason
        assert waited < REVOCATION_POLL_SECONDS  # this process closes it at once, not at its next check
        await still_open(other)


async def test_session_in_another_process_closes_when_the_key_is_revoked(api: Api) -> None:
    key_id, secret = await create_key(api, "ws revoked elsewhere")
    server = await start_server(create_app(api.settings, runtime=api.rt))
    try:
        async with (
            httpx.AsyncClient(base_url=server.base_url, timeout=10) as http,
            session(server.base_url, http, f"ApiKey {secret}") as ws,
        ):
            await still_open(ws)
            payload = (await api.data(REVOKE, {"id": key_id}, as_="admin_a"))["revokeApiKey"]
            assert payload["userErrors"] == []
            # That process learns of it at its next revocation check.
            code, reason, _ = await closed_with(ws, timeout=REVOCATION_POLL_SECONDS * 3)
            assert code == 4403 and "revoked" in reason
    finally:
        await server.stop()
