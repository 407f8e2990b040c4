"""One event, many subscribers: what the fan-out shares stays inside a sub-account and
the per-viewer checks still happen per viewer.

Subscribers of two sub-accounts get events that differ only in their sub-account (same
type, ids and time). Sharing anything per event but not per sub-account would hand one
tenant's rows (or nulls) to the other; sharing a role decision would show a user a
connection that a query hides from them.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from httpx_ws import AsyncWebSocketSession

from api.ids import to_global_id
from sync_engine.events import DomainEvent, EventType
from tests.integration.api.conftest import Api
from tests.integration.api.test_subscriptions import acknowledged, connect

INBOX = """subscription { inboxEvents { type
  thread { id subject contact { email } lastMessage { snippet } }
  message { id snippet html }
  emailConnection { id address } } }"""
PROBE = EventType.THREAD_CREATED  # no ids: only proves the subscription is listening


async def _drain(ws: AsyncWebSocketSession) -> None:
    while True:
        try:
            await ws.receive_json(timeout=0.3)
        except TimeoutError:
            return


async def _await_probe(ws: AsyncWebSocketSession) -> None:
    while (await ws.receive_json(timeout=10))["payload"]["data"]["inboxEvents"]["type"] != PROBE.upper():
        pass


async def _all_listening(api: Api, sockets: list[AsyncWebSocketSession]) -> None:
    """The server subscribes to the bus after `subscribe`, asynchronously: publish probes
    until every socket heard one, then drop the extra probes."""
    waiting = [asyncio.create_task(_await_probe(ws)) for ws in sockets]
    try:
        for _ in range(200):
            for sub in (api.seed.sub_a, api.seed.sub_b):
                await api.emit(DomainEvent(type=PROBE, sub_account_id=str(sub)))
            if all(t.done() for t in waiting):
                break
            await asyncio.sleep(0.05)
        await asyncio.gather(*waiting)
    finally:
        for t in waiting:
            t.cancel()
    await asyncio.gather(*(_drain(ws) for ws in sockets))


async def _next(ws: AsyncWebSocketSession) -> dict[str, Any]:
    message = await ws.receive_json(timeout=10)
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    return message["payload"]["data"]["inboxEvents"]


async def test_fan_out_to_many_subscribers_of_two_tenants(api: Api) -> None:
    from sqlalchemy import select

    from db.models import Message

    seed = api.seed
    thread_a = seed.threads_a[0]
    async with api.rt.sessions() as s:
        message_a = (await s.scalars(select(Message.id).where(Message.thread_id == thread_a).order_by(Message.sent_at.desc()))).first()

    # 48 subscribers: in A an admin, the connection's owner and another user; in B its admin.
    viewers = ["admin_a", "user_a2", "user_a"] * 12 + ["user_b"] * 12
    async with AsyncExitStack() as stack:
        sockets = []
        for who in viewers:
            ws = await stack.enter_async_context(connect(api, {"authorization": f"Bearer {api.token(who)}"}))
            await acknowledged(ws)
            await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": INBOX}})
            sockets.append(ws)
        await _all_listening(api, sockets)

        a_objects = {
            "thread": {"id": to_global_id("Thread", thread_a), "subject": "Subject 0",
                       "contact": {"email": "Customer0@Client.test"}, "lastMessage": {"snippet": "reply 0"}},
            "message": {"id": to_global_id("Message", message_a), "snippet": "reply 0", "html": "<p>reply 0</p>"},
        }
        a_connection = {"id": to_global_id("EmailConnection", seed.connection_a2), "address": "bob@acme.test"}
        b_objects = {
            "thread": {"id": to_global_id("Thread", seed.thread_b), "subject": "Rival secret",
                       "contact": {"email": "secret@rival.test"}, "lastMessage": {"snippet": "secret"}},
            "message": {"id": to_global_id("Message", seed.message_b), "snippet": "secret", "html": "<p>secret</p>"},
        }
        b_connection = {"id": to_global_id("EmailConnection", seed.connection_b), "address": "carol@other.test"}
        nothing = {"thread": None, "message": None}

        # Round 1: A's objects, named by events of both tenants with the same key.
        # Round 2: B's objects, the same way. A tenant sees only its own rows; the other
        # tenant's event naming them shows nulls, as a query would.
        rounds = [
            ((thread_a, message_a, seed.connection_a2), (a_objects, a_connection), (nothing, None)),
            ((seed.thread_b, seed.message_b, seed.connection_b), (nothing, None), (b_objects, b_connection)),
        ]
        # Assertions are made after the sockets are closed: raised inside 48 nested
        # websocket contexts, a failure would be buried in exception groups.
        received: list[list[dict[str, Any]]] = []
        for (thread_id, message_id, connection_id), _, _ in rounds:
            same = {"type": EventType.MESSAGE_ADDED, "thread_id": str(thread_id), "message_id": str(message_id),
                    "connection_id": str(connection_id), "occurred_at": "2030-01-01T00:00:00+00:00"}
            for sub in (seed.sub_a, seed.sub_b):
                await api.emit(DomainEvent(sub_account_id=str(sub), **same))
            received.append(await asyncio.gather(*(_next(ws) for ws in sockets)))
        extra = await asyncio.gather(*(_extra(ws) for ws in sockets))

    for (_, (seen_by_a, conn_a), (seen_by_b, conn_b)), got_round in zip(rounds, received, strict=True):
        for who, got in zip(viewers, got_round, strict=True):
            assert got["type"] == "MESSAGE_ADDED"
            tenant_a = who != "user_b"
            expected = seen_by_a if tenant_a else seen_by_b
            assert {"thread": got["thread"], "message": got["message"]} == expected, (who, got)
            # Connection details: its owner (bob = user_a2) and admins only.
            connection = conn_a if tenant_a else conn_b
            visible = who in ("admin_a", "user_a2", "user_b")
            assert got["emailConnection"] == (connection if visible else None), (who, got)
    # Nothing else arrived: each socket got exactly its own tenant's two events.
    assert [m for m in extra if m is not None] == []


async def _extra(ws: AsyncWebSocketSession) -> dict[str, Any] | None:
    try:
        return await ws.receive_json(timeout=0.3)
    except TimeoutError:
        return None


SLIM = "subscription { inboxEvents { type cursor thread { id subject } message { id snippet } } }"


def _executions(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("emailsync_subscription_executions_total "):
            return float(line.split()[1])
    raise AssertionError("no emailsync_subscription_executions_total in /metrics")


async def test_subscribers_who_would_get_the_same_answer_share_one_execution(api: Api) -> None:
    """Per event: one execution for all subscribers with the same document, variables,
    sub-account and role; per user when the document shows a connection (its details
    depend on who asks). Counted on /metrics."""
    seed = api.seed
    # Six of the same user and role on SLIM; INBOX (with emailConnection) by three users.
    plan = [("user_a", SLIM)] * 6 + [(who, INBOX) for who in ("admin_a", "user_a2", "user_a") for _ in range(2)]
    async with AsyncExitStack() as stack:
        sockets = []
        for who, query in plan:
            ws = await stack.enter_async_context(connect(api, {"authorization": f"Bearer {api.token(who)}"}))
            await acknowledged(ws)
            await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
            sockets.append(ws)
        await _all_listening(api, sockets)
        before = _executions((await api.http.get("/metrics")).text)
        event = DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id=str(seed.sub_a),
                            thread_id=str(seed.threads_a[0]), occurred_at="2030-01-02T00:00:00+00:00")
        await api.emit(event)
        got = await asyncio.gather(*(ws.receive_json(timeout=10) for ws in sockets))
        after = _executions((await api.http.get("/metrics")).text)
    slim = [message["payload"]["data"]["inboxEvents"] for message in got[:6]]
    assert all(answer == slim[0] for answer in slim) and slim[0]["thread"]["subject"] == "Subject 0"
    full = [message["payload"]["data"]["inboxEvents"] for message in got[6:]]
    assert full[0]["emailConnection"] is None or full[0] == full[1]
    assert after - before == 1 + 3, (before, after)
