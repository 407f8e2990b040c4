"""Subscriptions over graphql-transport-ws, fed by DomainEvents on the event bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, aconnect_ws

from api.ids import to_global_id
from sync_engine.events import DomainEvent, EventType
from tests.integration.api.conftest import Api

THREAD_EVENTS = """subscription ($id: ID!) { threadEvents(threadId: $id) {
  type occurredAt thread { id subject } message { id snippet direction } } }"""


@asynccontextmanager
async def connect(api: Api, init_payload: dict[str, Any] | None, headers: dict[str, str] | None = None) -> AsyncIterator[AsyncWebSocketSession]:
    async with aconnect_ws(
        f"{api.base_url}/graphql", api.http, subprotocols=["graphql-transport-ws"], headers=headers or {}
    ) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send_json({"type": "connection_init", "payload": init_payload or {}})
        yield ws


async def acknowledged(ws: AsyncWebSocketSession) -> None:
    message = await ws.receive_json(timeout=5)
    assert message["type"] == "connection_ack", message


async def publish_until_received(api: Api, ws: AsyncWebSocketSession, event: DomainEvent) -> dict[str, Any]:
    """The server subscribes to the bus asynchronously after `subscribe`: publish until it hears."""
    for _ in range(100):
        await api.emit(event)
        try:
            return await ws.receive_json(timeout=0.05)
        except TimeoutError:
            continue
    raise AssertionError("no event received")


async def test_thread_events(api: Api) -> None:
    thread_id = api.seed.threads_a[2]
    async with connect(api, {"authorization": f"Bearer {api.token('user_a')}"}) as ws:
        await acknowledged(ws)
        await ws.send_json(
            {"id": "1", "type": "subscribe", "payload": {"query": THREAD_EVENTS, "variables": {"id": to_global_id("Thread", thread_id)}}}
        )
        event = DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id=str(api.seed.sub_a), thread_id=str(thread_id))
        message = await publish_until_received(api, ws, event)
        assert message["type"] == "next" and message["id"] == "1"
        payload = message["payload"]["data"]["threadEvents"]
        assert payload["type"] == "MESSAGE_ADDED"
        assert payload["thread"] == {"id": to_global_id("Thread", thread_id), "subject": "Subject 2"}
        assert payload["message"] is None
        assert payload["occurredAt"]
        await ws.send_json({"id": "1", "type": "complete"})


async def test_thread_events_of_another_tenant_are_refused(api: Api) -> None:
    async with connect(api, {"authorization": f"Bearer {api.token('user_a')}"}) as ws:
        await acknowledged(ws)
        await ws.send_json(
            {"id": "x", "type": "subscribe",
             "payload": {"query": THREAD_EVENTS, "variables": {"id": to_global_id("Thread", api.seed.thread_b)}}}
        )
        message = await ws.receive_json(timeout=5)
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "NOT_FOUND"
        # Nothing published on that thread reaches this connection.
        await api.emit(
            DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id=str(api.seed.sub_b), thread_id=str(api.seed.thread_b))
        )
        with pytest.raises(TimeoutError):
            await ws.receive_json(timeout=0.3)


async def test_message_is_loaded_after_the_event(api: Api) -> None:
    from sqlalchemy import select

    from db.models import Message

    thread_id = api.seed.threads_a[3]
    async with api.rt.sessions() as s:
        message_id = (await s.scalars(select(Message.id).where(Message.thread_id == thread_id).order_by(Message.sent_at))).first()
    async with connect(api, {"authorization": f"Bearer {api.token('admin_a')}"}) as ws:
        await acknowledged(ws)
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": THREAD_EVENTS, "variables": {"id": to_global_id("Thread", thread_id)}}})
        event = DomainEvent(
            type=EventType.MESSAGE_UPDATED, sub_account_id=str(api.seed.sub_a), thread_id=str(thread_id), message_id=str(message_id)
        )
        message = await publish_until_received(api, ws, event)
        payload = message["payload"]["data"]["threadEvents"]
        assert payload["type"] == "MESSAGE_UPDATED"
        assert payload["message"] == {"id": to_global_id("Message", message_id), "snippet": "first 3", "direction": "OUTBOUND"}


async def test_inbox_events_and_auth_from_handshake_header(api: Api) -> None:
    query = "subscription { inboxEvents { type thread { subject } } }"
    async with connect(api, {}, headers={"Authorization": f"Bearer {api.token('user_a2')}"}) as ws:
        await acknowledged(ws)
        await ws.send_json({"id": "inbox", "type": "subscribe", "payload": {"query": query}})
        # Another tenant's events never arrive, even while ours do.
        await api.emit(
            DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=str(api.seed.sub_b), thread_id=str(api.seed.thread_b))
        )
        event = DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=str(api.seed.sub_a), thread_id=str(api.seed.threads_a[0]))
        message = await publish_until_received(api, ws, event)
        assert message["payload"]["data"]["inboxEvents"] == {"type": "THREAD_CREATED", "thread": {"subject": "Subject 0"}}


async def test_email_connection_events(api: Api) -> None:
    query = "subscription { emailConnectionEvents { type emailConnection { address status } } }"
    async with connect(api, {"authorization": f"Bearer {api.token('user_a')}"}) as ws:
        await acknowledged(ws)
        await ws.send_json({"id": "c", "type": "subscribe", "payload": {"query": query}})
        event = DomainEvent(
            type=EventType.CONNECTION_CHANGED, sub_account_id=str(api.seed.sub_a), connection_id=str(api.seed.connection_a),
            user_id=str(api.seed.user_a), status="active",
        )
        message = await publish_until_received(api, ws, event)
        assert message["payload"]["data"]["emailConnectionEvents"] == {
            "type": "CONNECTION_CHANGED", "emailConnection": {"address": "alice@acme.test", "status": "ACTIVE"}
        }


async def test_bad_token_closes_the_connection(api: Api) -> None:
    async with connect(api, {"authorization": "Bearer not-a-token"}) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_json(timeout=5)
        assert closed.value.code == 4403


async def test_missing_credentials_close_the_connection(api: Api) -> None:
    async with connect(api, {}) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_json(timeout=5)
        assert closed.value.code == 4403


async def test_agency_key_cannot_subscribe(api: Api) -> None:
    async with connect(api, {"authorization": f"ApiKey {api.seed.agency_key}"}) as ws:
        await acknowledged(ws)
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": "subscription { inboxEvents { type } }"}})
        message = await asyncio.wait_for(ws.receive_json(), timeout=5)
        assert message["type"] in ("error", "next"), message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"
