"""Malformed and oversized requests, sent as an attacker would: each answered with a 4xx
(or a GraphQL error), never a 500, and refused before authentication or execution."""

from __future__ import annotations

import asyncio
import json

import pytest
from httpx_ws import WebSocketDisconnect, aconnect_ws

from tests.integration.api.conftest import Api

BAD_BODIES = {
    "a bare JSON value": b"42",
    "a JSON string": b'"{ viewer { kind } }"',
    "a JSON list": b'[{"query": "{ viewer { kind } }"}]',
    "null": b"null",
    "JSON nested too deep": b'{"query": "{ viewer { kind } }", "variables": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
    "variables of the wrong type": b'{"query": "{ viewer { kind } }", "variables": [1, 2]}',
    "variables as a string": b'{"query": "{ viewer { kind } }", "variables": "{}"}',
    "operationName of the wrong type": b'{"query": "{ viewer { kind } }", "operationName": 5}',
    "extensions of the wrong type": b'{"query": "{ viewer { kind } }", "extensions": "x"}',
    "query of the wrong type": b'{"query": {"a": 1}}',
    "no query": b'{"variables": {}}',
    "a lone surrogate": b'{"query": "{ viewer { kind } }", "variables": {"x": "\\ud800"}}',
    "a lone surrogate in the query": b'{"query": "{ viewer { kind } \\udfff }"}',
    "not JSON": b"{ viewer { kind } }",
    "invalid UTF-8": b'{"query": "\xff\xfe"}',
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
async def test_malformed_graphql_bodies_are_client_errors(api: Api, name: str) -> None:
    for accept in ("application/json", "application/graphql-response+json"):
        response = await api.http.post("/graphql", content=BAD_BODIES[name], headers={
            "content-type": "application/json", "accept": accept, "authorization": api.auth_header("user_a")})
        assert response.status_code == 400, (name, accept, response.status_code, response.text)
        assert response.json()["errors"], name


async def test_bodies_past_the_limit_are_refused_before_anything_else(api: Api) -> None:
    big = json.dumps({"query": "{ viewer { kind } }", "variables": {"pad": "x" * (1024 * 1024)}}).encode()
    for path in ("/graphql", "/webhooks/graph", "/webhooks/gmail"):
        # No credentials at all: the size is checked first.
        response = await api.http.post(path, content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413, (path, response.status_code)

        async def chunks() -> object:  # no Content-Length: the limit holds while streaming
            for _ in range(20):
                yield b"x" * 65536

        response = await api.http.post(path, content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413, (path, "chunked", response.status_code)


@pytest.mark.parametrize("path", ["/webhooks/graph", "/webhooks/gmail"])
async def test_malformed_webhook_bodies_are_client_errors(api: Api, path: str) -> None:
    for body in (b"42", b"null", b"[]", b'{"value": 5}', b'{"value": [1]}', b'{"a":' * 5000 + b"1" + b"}" * 5000,
                 b'{"value": [{"clientState": "\\ud800"}]}', b"\xff\xfe", b"", b'{"message": {"data": 5}}'):
        response = await api.http.post(path, content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (path, body[:40], response.status_code, response.text)


async def test_a_subscription_over_http_gets_a_clear_error(api: Api) -> None:
    response = await api.post("subscription { inboxEvents { type } }", auth=api.auth_header("user_a"))
    assert response.status_code in (400, 405), response.text
    assert "WebSocket" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("payload", [
    {"type": "subscribe", "id": "1", "payload": {"query": 5}},
    {"type": "subscribe", "id": "1", "payload": {"query": "subscription { inboxEvents { type } }", "variables": [1]}},
    {"type": "subscribe", "id": "1", "payload": {"query": "subscription { inboxEvents { type } }",
                                                  "operationName": 5}},
    {"type": "subscribe", "id": 7, "payload": {"query": "subscription { inboxEvents { type } }"}},
    {"type": "subscribe"},
    {"type": 5},
    [1, 2],
])
async def test_malformed_websocket_messages_close_with_4400(api: Api, payload: object) -> None:
    url = str(api.http.base_url).rstrip("/") + "/graphql"
    async with aconnect_ws(url, api.http, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"authorization": api.auth_header("user_a")}})
        assert (await ws.receive_json())["type"] == "connection_ack"
        await ws.send_json(payload)
        with pytest.raises(WebSocketDisconnect) as closed:
            await asyncio.wait_for(ws.receive_json(), timeout=10)
        assert closed.value.code == 4400, closed.value


async def test_a_lone_surrogate_over_the_websocket_closes_with_4400(api: Api) -> None:
    url = str(api.http.base_url).rstrip("/") + "/graphql"
    async with aconnect_ws(url, api.http, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"authorization": api.auth_header("user_a")}})
        assert (await ws.receive_json())["type"] == "connection_ack"
        await ws.send_text('{"type": "subscribe", "id": "1", "payload": {"query": "subscription { inboxEvents '
                           '{ type } }", "variables": {"x": "\\ud800"}}}')
        with pytest.raises(WebSocketDisconnect) as closed:
            await asyncio.wait_for(ws.receive_json(), timeout=10)
        assert closed.value.code == 4400, closed.value
