"""The root ``Subscription`` type (graphql-transport-ws).

Each mail or connection subscription reads the caller's sub-account's event log through
the process's feed (``sync_engine.event_feed``): from the client's ``after`` cursor it
replays what the client missed, then goes live, each event once and in order. It
yields a ``SyncEvent`` whose objects are loaded on demand, scoped like any query.
Checks happen before the stream starts, so a refused subscription answers with an
``error`` message and never receives anything.

Fan-out: one event reaches every subscriber of its channel. The decoded event, the
``SyncEvent`` and the rows it shows are made once per event and sub-account and shared
(``api.event_memo``); each subscriber still runs its own execution, so
what depends on the viewer is decided for each.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import strawberry
from strawberry.types.nodes import SelectedField

from api.context import Info
from api.errors import BadUserInput, NotFoundError
from api.event_memo import event_scopes
from api.ids import parse_global_id
from api.permissions import IsMember
from api.types.bulk_send import BulkSendEvent, BulkSendEventType, BulkSendStatus, load_bulk_send
from api.types.event import LOADED_FIELDS, SyncEvent, SyncEventType, decode_event_cursor, preload
from db.repositories import threads
from sync_engine import metrics
from sync_engine.events import DomainEvent, bulk_send_channel
from vocabulary import EventType

log = logging.getLogger(__name__)

_MAIL_EVENTS = {EventType.MESSAGE_ADDED, EventType.MESSAGE_UPDATED, EventType.THREAD_CREATED}


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


AFTER_DESCRIPTION = ("The cursor of the last event the client received: the events after it are replayed, then "
                     "the stream goes live. Omitted: from now on.")


def to_sync_event(event: DomainEvent) -> SyncEvent | None:
    try:
        event_type = SyncEventType(event.type)
        occurred_at = datetime.fromisoformat(event.occurred_at)
    except ValueError:
        log.warning("ignoring event of unknown shape: %s", event.type)
        return None
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return SyncEvent(
        type=event_type,
        occurred_at=occurred_at,
        thread_db_id=_uuid(event.thread_id),
        message_db_id=_uuid(event.message_id),
        connection_db_id=_uuid(event.connection_id),
        seq=event.seq or 0,
        sub_account_db_id=_uuid(event.sub_account_id),
    )


def _event_key(event: DomainEvent) -> tuple[str | None, ...]:
    # What identifies one published event, equal on every channel it went out on.
    return (event.type, event.thread_id, event.message_id, event.connection_id, event.user_id, event.status,
            event.occurred_at, event.seq)


def shared_sync_event(info: Info, sub_account_id: uuid.UUID, event: DomainEvent) -> SyncEvent | None:
    """The ``SyncEvent`` every subscriber of ``sub_account_id`` gets for ``event``: built
    once, its rows loaded once (the first subscriber to ask loads them for all)."""
    scope = event_scopes.get(info.context.runtime, sub_account_id, _event_key(event))
    if "sync_event" not in scope.memo:
        sync_event = to_sync_event(event)
        if sync_event is not None:
            sync_event.scope = scope
        scope.memo["sync_event"] = sync_event
    return scope.memo["sync_event"]


def _selected_loads(info: Info) -> frozenset[str]:
    """Which of the event's loaded fields the document selects (fragments included;
    a field under ``@include``/``@skip`` counts as selected: a load too many is harmless)."""
    names: set[str] = set()

    def walk(selections: list[Any]) -> None:
        for selection in selections:
            if isinstance(selection, SelectedField):
                names.add(selection.name)
            else:  # inline fragment or fragment spread
                walk(selection.selections)

    for field in info.selected_fields:
        walk(field.selections)
    return frozenset(names) & LOADED_FIELDS


def _parse_after(after: str | None, sub_account_id: uuid.UUID) -> int | None:
    if after is None:
        return None
    decoded = decode_event_cursor(after)
    if decoded is None:
        raise BadUserInput("after is not an event cursor")
    cursor_sub_account, seq = decoded
    # Another sub-account's cursor says nothing about this log: "missed", never a silent skip.
    return seq if cursor_sub_account == sub_account_id else -1


async def _stream(
    info: Info, sub_account_id: uuid.UUID, after: int | None, accept: Callable[[DomainEvent], bool]
) -> AsyncGenerator[SyncEvent, None]:
    loads = _selected_loads(info)
    feeds = info.context.runtime.feeds
    # The sub-account's log is the belt; the filter's own sub-account check the braces.
    sub = str(sub_account_id)
    async with feeds.listen(sub_account_id, after, lambda e: e.sub_account_id == sub and accept(e)) as events:
        async for event in events:
            if event.type == EventType.EVENTS_MISSED:  # no ids, nothing to scope: always passed on
                yield SyncEvent(type=SyncEventType.EVENTS_MISSED, occurred_at=datetime.now(UTC), thread_db_id=None,
                                message_db_id=None, connection_db_id=None, seq=event.seq or 0,
                                sub_account_db_id=sub_account_id)
                continue
            sync_event = shared_sync_event(info, sub_account_id, event)
            if sync_event is not None:
                if loads:
                    await preload(sync_event, loads)
                metrics.EVENTS_DELIVERED.inc()
                yield sync_event


@strawberry.type(description="Live updates over graphql-transport-ws.")
class Subscription:
    @strawberry.subscription(
        description="Changes to one thread of the caller's sub-account (an error if it is not one).",
        permission_classes=[IsMember],
    )
    async def thread_events(
        self, info: Info, thread_id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the thread.")],
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> AsyncGenerator[SyncEvent, None]:
        viewer = info.context.require_member()
        start = _parse_after(after, viewer.sub_account_id)
        tid = parse_global_id(thread_id, "Thread")
        found = []
        if tid is not None:
            async with info.context.runtime.engine.connect() as conn:
                found = await threads.threads_by_ids(conn, viewer.sub_account_id, [tid])
        if not found:
            raise NotFoundError("thread not found")
        thread = str(tid)
        return _stream(info, viewer.sub_account_id, start,
                       lambda e: e.thread_id == thread and e.type in _MAIL_EVENTS)

    @strawberry.subscription(
        description="New and changed threads and messages of the caller's sub-account.",
        permission_classes=[IsMember],
    )
    async def inbox_events(
        self, info: Info, after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> AsyncGenerator[SyncEvent, None]:
        viewer = info.context.require_member()
        return _stream(info, viewer.sub_account_id, _parse_after(after, viewer.sub_account_id),
                       lambda e: e.type in _MAIL_EVENTS)

    @strawberry.subscription(
        description="State changes of the caller's mailbox connection (for API keys: every connection of the "
        "sub-account).",
        permission_classes=[IsMember],
    )
    async def email_connection_events(
        self, info: Info, after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> AsyncGenerator[SyncEvent, None]:
        viewer = info.context.require_member()
        start = _parse_after(after, viewer.sub_account_id)
        owner = str(viewer.user_id) if viewer.user_id is not None else None

        def accept(e: DomainEvent) -> bool:
            return e.type == EventType.CONNECTION_CHANGED and (owner is None or e.user_id == owner)

        return _stream(info, viewer.sub_account_id, start, accept)

    @strawberry.subscription(
        description="Progress of a bulk email of the caller's sub-account: its state at once, then after each "
        "delivery, ending with COMPLETED (an error if it is not one).",
        permission_classes=[IsMember],
    )
    async def bulk_send_events(
        self, info: Info,
        bulk_send_id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the bulk email.")],
    ) -> AsyncGenerator[BulkSendEvent, None]:
        info.context.require_member()
        bid = parse_global_id(bulk_send_id, "BulkSend")
        if await load_bulk_send(info, bid) is None:
            raise NotFoundError("bulk send not found")
        assert bid is not None
        return _bulk_progress(info, bid)


async def _bulk_progress(info: Info, bulk_send_id: uuid.UUID) -> AsyncGenerator[BulkSendEvent, None]:
    # Listening starts before the first read, so no delivery between the two is missed.
    async with info.context.runtime.events.subscribe(bulk_send_channel(bulk_send_id)) as events:
        async for _ in _snapshot_then(events):
            bulk = await load_bulk_send(info, bulk_send_id)
            if bulk is None:
                return
            done = bulk.status is BulkSendStatus.COMPLETED
            yield BulkSendEvent(type=BulkSendEventType.COMPLETED if done else BulkSendEventType.PROGRESS,
                                occurred_at=datetime.now(UTC), bulk_send=bulk)
            if done:
                return


async def _snapshot_then(events: Any) -> AsyncGenerator[None, None]:
    yield None
    async for _ in events:
        yield None
