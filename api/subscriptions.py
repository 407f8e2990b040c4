"""The root ``Subscription`` type (graphql-transport-ws).

Each subscription listens on an event-bus channel of the caller's sub-account and
yields a ``SyncEvent`` whose objects are loaded on demand, scoped like any query.
Checks happen before the stream starts, so a refused subscription answers with an
``error`` message and never receives anything.

Fan-out: one event reaches every subscriber of its channel. The decoded event, the
``SyncEvent`` and the rows it shows are made once per event and sub-account and shared
(``api.dataloaders.event_scope``); each subscriber still runs its own execution, so
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
from api.dataloaders.event_scope import event_scopes
from api.errors import NotFoundError
from api.ids import parse_global_id
from api.permissions import IsMember
from api.types.bulk_send import BulkSendEvent, BulkSendEventType, BulkSendStatus, load_bulk_send
from api.types.event import LOADED_FIELDS, SyncEvent, SyncEventType, preload
from db.repositories import threads
from sync_engine.events import (
    DomainEvent,
    EventType,
    bulk_send_channel,
    connection_channel,
    subaccount_channel,
    thread_channel,
)

log = logging.getLogger(__name__)

_MAIL_EVENTS = {EventType.MESSAGE_ADDED, EventType.MESSAGE_UPDATED, EventType.THREAD_CREATED}


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


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
    )


def _event_key(event: DomainEvent) -> tuple[str | None, ...]:
    # What identifies one published event, equal on every channel it went out on.
    return (event.type, event.thread_id, event.message_id, event.connection_id, event.user_id, event.status,
            event.occurred_at)


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


async def _stream(
    info: Info, channel: str, sub_account_id: uuid.UUID, accept: Callable[[DomainEvent], bool]
) -> AsyncGenerator[SyncEvent, None]:
    loads = _selected_loads(info)
    async with info.context.runtime.events.subscribe(channel) as events:
        async for event in events:
            if event.type == EventType.EVENTS_MISSED:  # no ids, nothing to scope: always passed on
                yield SyncEvent(type=SyncEventType.EVENTS_MISSED, occurred_at=datetime.now(UTC),
                                thread_db_id=None, message_db_id=None, connection_db_id=None)
                continue
            # Channels are per sub-account already; this is the belt to those braces.
            if event.sub_account_id != str(sub_account_id) or not accept(event):
                continue
            sync_event = shared_sync_event(info, sub_account_id, event)
            if sync_event is not None:
                if loads:
                    await preload(sync_event, loads)
                yield sync_event


@strawberry.type(description="Live updates over graphql-transport-ws.")
class Subscription:
    @strawberry.subscription(
        description="Changes to one thread of the caller's sub-account (an error if it is not one).",
        permission_classes=[IsMember],
    )
    async def thread_events(
        self, info: Info, thread_id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the thread.")]
    ) -> AsyncGenerator[SyncEvent, None]:
        viewer = info.context.require_member()
        tid = parse_global_id(thread_id, "Thread")
        found = []
        if tid is not None:
            async with info.context.runtime.engine.connect() as conn:
                found = await threads.threads_by_ids(conn, viewer.sub_account_id, [tid])
        if not found:
            raise NotFoundError("thread not found")
        return _stream(info, thread_channel(tid), viewer.sub_account_id, lambda e: e.thread_id == str(tid))

    @strawberry.subscription(
        description="New and changed threads and messages of the caller's sub-account.",
        permission_classes=[IsMember],
    )
    async def inbox_events(self, info: Info) -> AsyncGenerator[SyncEvent, None]:
        viewer = info.context.require_member()
        return _stream(
            info, subaccount_channel(viewer.sub_account_id), viewer.sub_account_id, lambda e: e.type in _MAIL_EVENTS
        )

    @strawberry.subscription(
        description="State changes of the caller's mailbox connection (for API keys: every connection of the "
        "sub-account).",
        permission_classes=[IsMember],
    )
    async def email_connection_events(self, info: Info) -> AsyncGenerator[SyncEvent, None]:
        viewer = info.context.require_member()
        is_connection_event: Callable[[DomainEvent], bool] = lambda e: e.type == EventType.CONNECTION_CHANGED  # noqa: E731
        if viewer.user_id is not None:
            return _stream(info, connection_channel(viewer.user_id), viewer.sub_account_id, is_connection_event)
        return _stream(info, subaccount_channel(viewer.sub_account_id), viewer.sub_account_id, is_connection_event)

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
