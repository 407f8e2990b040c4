"""Domain events, published per sub-account, per thread and per connection owner.

Events are small JSON documents (ids and a type, never message bodies) on a
broadcaster channel; the API's subscriptions listen and load what they show.
A Redis URL gives cross-process delivery (worker → API); without one the
in-memory backend serves the embedded single-process mode.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from redis.exceptions import RedisError

from sync_engine.domain import utc_now_iso

log = logging.getLogger(__name__)


class EventType:
    MESSAGE_ADDED = "message_added"
    MESSAGE_UPDATED = "message_updated"
    THREAD_CREATED = "thread_created"
    CONNECTION_CHANGED = "connection_changed"
    # A bulk send's counters moved (a delivery finished) or it completed.
    BULK_SEND_PROGRESS = "bulk_send_progress"
    # Not a change: the bus lost its connection and may have dropped events on this
    # channel. Carries no ids (it is not scoped to anything); subscribers refetch.
    EVENTS_MISSED = "events_missed"


def subaccount_channel(sub_account_id: uuid.UUID | str) -> str:
    return f"subaccount.{sub_account_id}"


def thread_channel(thread_id: uuid.UUID | str) -> str:
    return f"thread.{thread_id}"


def connection_channel(user_id: uuid.UUID | str) -> str:
    return f"connection.{user_id}"


def bulk_send_channel(bulk_send_id: uuid.UUID | str) -> str:
    return f"bulk_send.{bulk_send_id}"


@dataclass(slots=True)
class DomainEvent:
    type: str
    sub_account_id: str
    thread_id: str | None = None
    message_id: str | None = None
    connection_id: str | None = None
    user_id: str | None = None
    status: str | None = None
    bulk_send_id: str | None = None
    occurred_at: str = field(default_factory=utc_now_iso)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> DomainEvent:
        return cls(**json.loads(raw))

    @classmethod
    def events_missed(cls) -> DomainEvent:
        return cls(type=EventType.EVENTS_MISSED, sub_account_id="")

    def channels(self) -> list[str]:
        if self.bulk_send_id:  # progress goes to that bulk send's watchers only
            return [bulk_send_channel(self.bulk_send_id)]
        out = [subaccount_channel(self.sub_account_id)]
        if self.thread_id:
            out.append(thread_channel(self.thread_id))
        if self.user_id and self.type == EventType.CONNECTION_CHANGED:
            out.append(connection_channel(self.user_id))
        return out


class EventBus(Protocol):
    async def publish(self, event: DomainEvent) -> None: ...

    def subscribe(self, channel: str) -> Any:
        """An async context manager yielding an async iterator of DomainEvent."""
        ...


class BroadcastEventBus:
    """EventBus over a ``broadcaster.Broadcast`` (memory:// or redis://).

    Publishing is best effort: events are announced after the change they describe has
    committed, so a bus outage must not turn a done change into an error (a client
    would retry a send that is already queued). Whoever may have missed something is
    told with an ``EVENTS_MISSED`` event: subscribers whose listener lost the bus when
    it reconnects (``event_backends``), and the channels this publisher failed to reach
    on its next successful publish (here).
    """

    MAX_MISSED_CHANNELS = 10_000  # beyond this, an outage is announced on the first ones only

    def __init__(self, broadcast: Any) -> None:
        self._broadcast = broadcast
        self._missed: set[str] = set()
        self.dropped = 0  # events that could not be published (metrics, tests)

    async def publish(self, event: DomainEvent) -> None:
        if self._missed:
            await self._announce_missed()
        payload = event.to_json()
        for channel in event.channels():
            try:
                await self._broadcast.publish(channel=channel, message=payload)
            except (RedisError, OSError) as exc:  # the bus is down; the change itself is committed
                self.dropped += 1
                if len(self._missed) < self.MAX_MISSED_CHANNELS:
                    self._missed.add(channel)
                log.warning("event bus unavailable, %s event not published (%s)", event.type, type(exc).__name__)

    async def _announce_missed(self) -> None:
        marker = DomainEvent.events_missed().to_json()
        for channel in sorted(self._missed):
            try:
                await self._broadcast.publish(channel=channel, message=marker)
            except (RedisError, OSError):
                return  # still down: the next publish tries again
            self._missed.discard(channel)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[DomainEvent]]:
        """Events of ``channel``. The yielded ``DomainEvent`` objects are shared by every
        subscriber of the process: read them, never change them."""
        # broadcaster keeps one backend (Redis) subscription per channel however many
        # listen here; each listener gets the same message from its own queue.
        async with self._broadcast.subscribe(channel=channel) as subscriber:

            async def events() -> AsyncIterator[DomainEvent]:
                async for item in subscriber:
                    if item is None:  # broadcaster signals unsubscribe with None
                        return
                    yield _decode(item.message)

            yield events()


@lru_cache(maxsize=256)
def _decode(raw: str) -> DomainEvent:
    """One message reaches every subscriber of its channel (a thousand on a busy API
    process): decode it once, and give the same payload published on several channels
    (sub-account and thread) one identity. Keyed by the text, so a hit is an equal event."""
    return DomainEvent.from_json(raw)
