"""Subscriptions read the event log: relays lost, repeated or out of order change nothing.

The bus is only the fast path. Here events are written to the log as services do, and
their relay is withheld, repeated or reordered: every subscriber still gets each event
of its sub-account once, in log order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from httpx_ws import AsyncWebSocketSession

from api.types.event import decode_event_cursor, encode_event_cursor
from sync_engine import event_feed
from sync_engine.events import DomainEvent, EventType, record_events
from tests.integration.api.conftest import Api
from tests.integration.api.test_subscriptions import acknowledged, connect

INBOX = "subscription($after: String) { inboxEvents(after: $after) { type cursor thread { subject } } }"


async def _record_only(api: Api, event: DomainEvent) -> DomainEvent:
    """A change committed whose relay never happened (the process died right after the commit)."""
    logged = dataclasses.replace(event, seq=None)
    async with api.rt.sessions.begin() as session:
        await record_events(session, [logged])
    return logged


def _thread_event(api: Api, n: int, sub: str = "a") -> DomainEvent:
    if sub == "a":
        return DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=str(api.seed.sub_a),
                           thread_id=str(api.seed.threads_a[n]))
    return DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=str(api.seed.sub_b),
                       thread_id=str(api.seed.thread_b))


async def _next(ws: AsyncWebSocketSession, timeout: float = 20.0) -> dict[str, Any]:
    message = await ws.receive_json(timeout=timeout)
    assert message["type"] == "next", message
    return message["payload"]["data"]["inboxEvents"]


async def _live(api: Api, ws: AsyncWebSocketSession, after: str | None = None) -> str:
    """Subscribe and wait until live (a probe event arrives); returns the probe's cursor."""
    await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": INBOX, "variables": {"after": after}}})
    for _ in range(200):  # the server registers the subscription asynchronously
        probe = await api.emit(_thread_event(api, 0))
        try:
            event = await _next(ws, timeout=0.1)
        except TimeoutError:
            continue
        # Heard: live. Drain the probes that were still on their way.
        while decode_event_cursor(event["cursor"]) != probe.seq:
            event = await _next(ws)
        return event["cursor"]
    raise AssertionError("the subscription never went live")


async def test_an_event_whose_relay_was_lost_still_arrives(api: Api) -> None:
    async with connect(api, {"authorization": f"Bearer {api.token('user_a')}"}) as ws:
        await acknowledged(ws)
        await _live(api, ws)
        lost = await _record_only(api, _thread_event(api, 1))
        event = await _next(ws)  # from the API's poll of the log
        assert decode_event_cursor(event["cursor"]) == lost.seq
        assert event["thread"] == {"subject": "Subject 1"}


async def test_a_hole_is_filled_from_the_log_and_repeats_are_dropped(api: Api) -> None:
    async with connect(api, {"authorization": f"Bearer {api.token('user_a')}"}) as ws:
        await acknowledged(ws)
        await _live(api, ws)
        hole = await _record_only(api, _thread_event(api, 1))
        after_hole = await api.emit(_thread_event(api, 2))
        await api.rt.events.publish(after_hole)  # relayed twice
        await api.rt.events.publish(hole)  # and the missing one, late
        got = [decode_event_cursor((await _next(ws))["cursor"]) for _ in range(2)]
        assert got == [hole.seq, after_hole.seq]
        marker = await api.emit(_thread_event(api, 3))
        assert decode_event_cursor((await _next(ws))["cursor"]) == marker.seq  # nothing repeated before it


async def test_a_replay_shows_only_the_callers_sub_account(api: Api) -> None:
    mine = await api.emit(_thread_event(api, 0, sub="b"))
    await api.emit(_thread_event(api, 1, sub="a"))
    async with connect(api, {"authorization": f"Bearer {api.token('user_b')}"}) as ws:
        await acknowledged(ws)
        # A cursor is a position in the caller's own log; one just before its event replays it.
        await ws.send_json({"id": "1", "type": "subscribe",
                            "payload": {"query": INBOX, "variables": {"after": encode_event_cursor(mine.seq - 1)}}})
        event = await _next(ws)
        assert decode_event_cursor(event["cursor"]) == mine.seq and event["thread"] == {"subject": "Rival secret"}
        marker = await api.emit(_thread_event(api, 0, sub="b"))
        assert decode_event_cursor((await _next(ws))["cursor"]) == marker.seq


async def test_a_listener_that_falls_behind_replays_from_the_log(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_feed, "MAX_QUEUED", 3)
    sub = api.seed.sub_a
    async with api.rt.feeds.listen(sub, None, lambda e: True) as events:
        emitted = [await api.emit(_thread_event(api, n % 4)) for n in range(10)]  # nobody reads meanwhile
        got = [(await anext(events)).seq for _ in emitted]
    assert got == [e.seq for e in emitted]
