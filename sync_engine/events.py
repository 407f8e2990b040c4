"""Domain events: written to the event log with their change, then relayed live.

A change and its events commit in one transaction (``record_events``): the log in the
database is the truth, numbered per sub-account (``seq``) so a client can say where it
stopped. After the commit the events are relayed on a broadcaster channel (Redis
pub/sub across processes, in-memory in the embedded mode) for low latency; a relay that
never happens (a crash right after the commit, Redis down) only delays delivery, since
readers (``sync_engine.event_feed``) fill every gap from the log.

Events are small (ids and a type, never message bodies); subscribers load what they
show with their own scope.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.repositories import events as event_log
from sync_engine import metrics
from sync_engine.domain import utc_now_iso
from vocabulary import EventType  # the event words are the product vocabulary

log = logging.getLogger(__name__)


# Relayed only, not logged: a bulk send's progress is a counter on its row, and its
# subscription starts from a snapshot of that row, so there is nothing to replay.
UNLOGGED_TYPES = frozenset({EventType.BULK_SEND_PROGRESS})


def subaccount_channel(sub_account_id: uuid.UUID | str) -> str:
    return f"subaccount.{sub_account_id}"


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
    # The event's number in its sub-account's log, set when it is recorded.
    seq: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> DomainEvent:
        return cls(**json.loads(raw))

    @classmethod
    def bus_resumed(cls) -> DomainEvent:
        return cls(type=EventType.BUS_RESUMED, sub_account_id="")

    def channel(self) -> str:
        # Threads and connections are read from the sub-account's ordered log (one reader
        # per sub-account and process); progress goes to that bulk send's watchers only.
        if self.bulk_send_id:
            return bulk_send_channel(self.bulk_send_id)
        return subaccount_channel(self.sub_account_id)

    def log_row(self) -> dict[str, Any]:
        """The event's columns in the log (``seq`` and the sub-account are set on append)."""
        return {"type": self.type, "thread_id": _uuid(self.thread_id), "message_id": _uuid(self.message_id),
                "connection_id": _uuid(self.connection_id), "user_id": _uuid(self.user_id), "status": self.status,
                "occurred_at": datetime.fromisoformat(self.occurred_at)}

    @classmethod
    def from_log_row(cls, sub_account_id: uuid.UUID, row: Any) -> DomainEvent:
        return cls(type=row.type, sub_account_id=str(sub_account_id), thread_id=_text(row.thread_id),
                   message_id=_text(row.message_id), connection_id=_text(row.connection_id),
                   user_id=_text(row.user_id), status=row.status, occurred_at=row.occurred_at.isoformat(),
                   seq=int(row.seq))


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


async def record_events(db: AsyncConnection | AsyncSession, events: Sequence[DomainEvent]) -> None:
    """Write ``events`` to the log inside the caller's transaction (call it last in the
    transaction: it takes the sub-account's counter lock until commit), numbering them."""
    conn = await db.connection() if isinstance(db, AsyncSession) else db
    by_sub_account: dict[str, list[DomainEvent]] = {}
    for event in events:
        if event.type not in UNLOGGED_TYPES:
            by_sub_account.setdefault(event.sub_account_id, []).append(event)
    for sub_account_id, group in sorted(by_sub_account.items()):  # one lock order: no deadlock between writers
        rows = [event.log_row() for event in group]
        await event_log.append(conn, uuid.UUID(sub_account_id), rows)
        for event, row in zip(group, rows, strict=True):
            event.seq = row["seq"]
        metrics.EVENTS_RECORDED.inc(len(group))


class EventBus(Protocol):
    async def publish(self, event: DomainEvent) -> None: ...

    async def publish_all(self, events: Iterable[DomainEvent]) -> None: ...

    def subscribe(self, channel: str) -> Any:
        """An async context manager yielding an async iterator of DomainEvent."""
        ...


class BroadcastEventBus:
    """EventBus over a ``broadcaster.Broadcast`` (memory:// or a Redis backend).

    Relaying is best effort: the events are in the log already, and readers fill gaps
    from it (on the next event, when the bus comes back, and by polling), so a bus
    outage must not turn a committed change into an error (a client would retry a send
    that is already queued).
    """

    def __init__(self, broadcast: Any) -> None:
        self._broadcast = broadcast
        self.dropped = 0  # events that could not be relayed (metrics, tests)

    async def publish(self, event: DomainEvent) -> None:
        try:
            await self._broadcast.publish(channel=event.channel(), message=event.to_json())
        except (RedisError, OSError) as exc:  # the bus is down; the change and its event are committed
            self.dropped += 1
            log.warning("event bus unavailable, %s event not relayed (%s)", event.type, type(exc).__name__)
            return
        metrics.EVENTS_RELAYED.inc()

    async def publish_all(self, events: Iterable[DomainEvent]) -> None:
        """Relay a committed batch. Of the logged events only each sub-account's last is sent:
        a reader that sees it ahead of what it has reads the ones before from the log, so a
        page of 200 imported messages costs one publish instead of 200."""
        last_logged: dict[str, DomainEvent] = {}
        for event in events:
            if event.seq is None:
                await self.publish(event)
            elif event.sub_account_id not in last_logged or event.seq > (last_logged[event.sub_account_id].seq or 0):
                last_logged[event.sub_account_id] = event
        for event in last_logged.values():
            await self.publish(event)

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
