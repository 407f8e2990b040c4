"""Introspection is a setting (EMAILSYNC_INTROSPECTION): off, ``__schema`` and ``__type``
are refused for everyone; on, everyone may introspect. ``__typename`` always works."""

from __future__ import annotations

from typing import Any

import pytest
from httpx_ws import aconnect_ws

from tests.integration.api.conftest import Api

SCHEMA = "{ __schema { queryType { name } } }"
TYPE = '{ __type(name: "Thread") { name } }'
CALLERS = [None, "user_a", "sub_a_key"]


async def _ask(api: Api, query: str, who: str | None) -> dict[str, Any]:
    response = await api.post(query, auth=api.auth_header(who) if who else None)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("who", CALLERS)
async def test_refused_when_off(api: Api, who: str | None) -> None:
    assert api.settings.introspection is False  # the default
    for query, field in ((SCHEMA, "__schema"), (TYPE, "__type")):
        body = await _ask(api, query, who)
        assert "data" not in body, body
        # graphql-core's rule names every introspection field of the query, the root one first.
        assert all("introspection has been disabled" in e["message"] for e in body["errors"]), body
        assert f"'{field}'" in body["errors"][0]["message"]
    assert (await _ask(api, "{ __typename }", who)) == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("who", CALLERS)
async def test_allowed_when_on(api: Api, introspection: None, who: str | None) -> None:
    assert (await _ask(api, SCHEMA, who)) == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    assert (await _ask(api, TYPE, who)) == {"data": {"__type": {"name": "Thread"}}}


async def test_refused_over_websocket_when_off(api: Api) -> None:
    async with aconnect_ws(f"{api.base_url}/graphql", api.http, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"authorization": api.auth_header("user_a")}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": SCHEMA}})
        message = await ws.receive_json(timeout=5)
        assert message["type"] == "error" and "introspection has been disabled" in message["payload"][0]["message"]
