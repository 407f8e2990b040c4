"""Subscriptions read the event log: relays lost, repeated or out of order change nothing.

The bus is only the fast path. Here events are written to the log as services do, and
their relay is withheld, repeated or reordered: every subscriber still gets each event
of its sub-account once, in log order.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx_ws import AsyncWebSocketSession

from api.types.event import decode_event_cursor as _decode
from api.types.event import encode_event_cursor
from db.repositories import events as event_log
from emailsync.runtime import job_context
from sync_engine import event_feed, jobs
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


def decode_event_cursor(cursor: str) -> int | None:
    decoded = _decode(cursor)
    return decoded[1] if decoded is not None else None


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
                            "payload": {"query": INBOX, "variables": {"after": encode_event_cursor(api.seed.sub_b, mine.seq - 1)}}})
        event = await _next(ws)
        assert decode_event_cursor(event["cursor"]) == mine.seq and event["thread"] == {"subject": "Rival secret"}
        marker = await api.emit(_thread_event(api, 0, sub="b"))
        assert decode_event_cursor((await _next(ws))["cursor"]) == marker.seq


async def test_another_sub_accounts_cursor_is_told_events_missed(api: Api) -> None:
    theirs = await api.emit(_thread_event(api, 0, sub="b"))
    ours = await api.emit(_thread_event(api, 1, sub="a"))
    async with connect(api, {"authorization": f"Bearer {api.token('user_a')}"}) as ws:
        await acknowledged(ws)
        # A position in sub-account B's log, reused by a user of A: nothing of A may be skipped silently.
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": INBOX, "variables": {"after": encode_event_cursor(api.seed.sub_b, theirs.seq + ours.seq)}}})
        event = await _next(ws)
        assert event["type"] == "EVENTS_MISSED" and _decode(event["cursor"])[0] == api.seed.sub_a


@pytest.mark.parametrize("cursor", ["nonsense", "ZXZlbnQ6MQ", "a b", "ZXZlbnQ6" + "x" * 300, "ZXZl*bnQ6MQ"])
async def test_what_is_not_a_cursor_is_refused(api: Api, cursor: str) -> None:
    async with connect(api, {"authorization": f"Bearer {api.token('user_a')}"}) as ws:
        await acknowledged(ws)
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": INBOX, "variables": {"after": cursor}}})
        message = await ws.receive_json(timeout=10)
        assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT", message


async def test_a_listener_that_falls_behind_replays_from_the_log(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_feed, "MAX_QUEUED", 3)
    sub = api.seed.sub_a
    async with api.rt.feeds.listen(sub, None, lambda e: True) as events:
        emitted = [await api.emit(_thread_event(api, n % 4)) for n in range(10)]  # nobody reads meanwhile
        got = [(await anext(events)).seq for _ in emitted]
    assert got == [e.seq for e in emitted]


async def test_the_retention_purge_cuts_the_log_and_resuming_before_the_cut_is_told_so(api: Api) -> None:
    old = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    expired = [await api.emit(dataclasses.replace(_thread_event(api, n), occurred_at=old)) for n in range(3)]
    kept = await api.emit(_thread_event(api, 3))
    await jobs.purge_event_log(job_context(api.rt))  # what the worker's hourly job runs

    async with api.rt.engine.connect() as conn:
        (_last, purged_through), = (await event_log.heads(conn, [api.seed.sub_a])).values()
        remaining = [row.seq for row in await event_log.read_after(conn, api.seed.sub_a, 0)]
    assert purged_through == expired[-1].seq
    assert remaining and remaining[0] == kept.seq  # everything up to the cut is gone, nothing after it

    async with connect(api, {"authorization": f"Bearer {api.token('user_a')}"}) as ws:
        await acknowledged(ws)
        before_cut = encode_event_cursor(api.seed.sub_a, expired[0].seq)
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": INBOX, "variables": {"after": before_cut}}})
        assert (await _next(ws))["type"] == "EVENTS_MISSED"
    async with connect(api, {"authorization": f"Bearer {api.token('user_a')}"}) as ws:
        await acknowledged(ws)
        at_cut = encode_event_cursor(api.seed.sub_a, expired[-1].seq)
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": INBOX, "variables": {"after": at_cut}}})
        event = await _next(ws)
        assert event["type"] == "THREAD_CREATED" and decode_event_cursor(event["cursor"]) == kept.seq
