"""Live events pushed over subscriptions.

The event bus carries ids only; the objects are loaded (scoped to the subscriber's
sub-account) when a subscriber asks for them, so an event never shows more than a
query would. One ``SyncEvent`` and its objects serve every subscriber of the
sub-account that the event reaches in this process (see ``api.event_memo``):
nothing in them may depend on who the viewer is, and what does (the connection's
owner/admin check) is decided per viewer in the resolver.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import logging
import re
import uuid
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

import strawberry

from api.context import Info
from api.dataloaders.connection_by_id import load_connections
from api.dataloaders.message_by_id import load_messages
from api.dataloaders.thread_by_id import load_threads
from api.event_memo import EventScope
from api.types.email_connection import EmailConnection, email_connection_from_row
from api.types.message import Message, message_from_row
from api.types.thread import Thread, thread_from_row
from vocabulary import EventType

log = logging.getLogger(__name__)


# The event types subscribers of ``inboxEvents`` see: a subset of the vocabulary's (bulk
# send progress has its own subscription; a bus resumption is never shown), so its own enum.
@strawberry.enum(description="What happened.")
class SyncEventType(enum.Enum):
    MESSAGE_ADDED = strawberry.enum_value(EventType.MESSAGE_ADDED.value, description="A message was added to a thread.")
    MESSAGE_UPDATED = strawberry.enum_value(
        EventType.MESSAGE_UPDATED.value,
        description="A message changed (read state, deleted in mailbox, delivery status).",
    )
    THREAD_CREATED = strawberry.enum_value(EventType.THREAD_CREATED.value, description="A new thread was started.")
    CONNECTION_CHANGED = strawberry.enum_value(
        EventType.CONNECTION_CHANGED.value, description="A mailbox connection changed state or finished a sync."
    )
    EVENTS_MISSED = strawberry.enum_value(
        EventType.EVENTS_MISSED.value,
        description="The cursor given as `after` is older than the event log's retention (or unknown), so what "
        "happened since cannot be replayed: refetch what you show, then go on from this event's cursor. Carries no "
        "thread, message or connection.",
    )


@strawberry.type(description="A change in the sub-account's mail, delivered live.")
class SyncEvent:
    type: SyncEventType = strawberry.field(description="What happened.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    thread_db_id: strawberry.Private[uuid.UUID | None]
    message_db_id: strawberry.Private[uuid.UUID | None]
    connection_db_id: strawberry.Private[uuid.UUID | None]
    seq: strawberry.Private[int] = 0
    sub_account_db_id: strawberry.Private[uuid.UUID | None] = None
    # The event's rows in the subscribers' sub-account; None for EVENTS_MISSED (no ids).
    scope: strawberry.Private[EventScope | None] = None

    @strawberry.field(description="Where this event stands in the sub-account's event log. Give it as `after` when "
                      "subscribing again to receive exactly the events that came after it.")
    def cursor(self) -> str:
        assert self.sub_account_db_id is not None, "every streamed event knows its sub-account"
        return encode_event_cursor(self.sub_account_db_id, self.seq)

    def _scope(self, info: Info) -> EventScope | None:
        """The shared scope, when it is the viewer's sub-account's (``_stream`` picks it
        so; checked again because a mix-up here would show one tenant another's rows)."""
        scope = self.scope
        if scope is None or info.context.require_member().sub_account_id != scope.sub_account_id:
            return None
        return scope

    async def _load(self, info: Info, field_name: str) -> Any:
        scope = self._scope(info)
        if scope is None:
            return None
        fetch, build, id_attribute = _LOADS[field_name]
        return await scope.load_as(fetch, getattr(self, id_attribute), build)

    @strawberry.field(description="The thread concerned, if any.")
    async def thread(self, info: Info) -> Thread | None:
        return await self._load(info, "thread")

    @strawberry.field(description="The message concerned, if any.")
    async def message(self, info: Info) -> Message | None:
        return await self._load(info, "message")

    @strawberry.field(description="The mailbox connection concerned, if any.")
    async def email_connection(self, info: Info) -> EmailConnection | None:
        row = await self._load(info, "emailConnection")
        if row is None:
            return None
        viewer = info.context.require_member()
        # The row is shared by the sub-account; its details are for their owner and the
        # sub-account's admins only, decided here for each viewer.
        if not viewer.is_admin and row.user_id != viewer.user_id:
            return None
        return email_connection_from_row(row)


_CURSOR_PREFIX = "event:"
_CURSOR_TEXT = re.compile(r"event:([0-9a-f]{32}):([0-9]{1,18})")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{1,200}")


def encode_event_cursor(sub_account_id: uuid.UUID, seq: int) -> str:
    """Opaque to clients (base64url, like connection cursors); inside, the sub-account whose
    log it points into and the event's number in it."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{sub_account_id.hex}:{seq}".encode()).decode().rstrip("=")


def decode_event_cursor(cursor: str) -> tuple[uuid.UUID, int] | None:
    """(sub-account, seq), or None for anything that is not a cursor we made."""
    if not _BASE64URL.fullmatch(cursor):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    found = _CURSOR_TEXT.fullmatch(text)
    if found is None:
        return None
    return uuid.UUID(found.group(1)), int(found.group(2))


def _row(row: Any) -> Any:
    return row


# Schema field -> (sub-account scoped fetch, what is kept from the row, the id it takes).
_LOADS: dict[str, tuple[Any, Callable[[Any], Any], str]] = {
    "thread": (load_threads, thread_from_row, "thread_db_id"),
    "message": (load_messages, message_from_row, "message_db_id"),
    "emailConnection": (load_connections, _row, "connection_db_id"),
}
LOADED_FIELDS = frozenset(_LOADS)


async def preload(event: SyncEvent, fields: Collection[str]) -> None:
    """Load what ``fields`` of ``event`` show before a subscriber's execution starts.

    The first subscriber of the event starts the loads, the others wait for the same
    ones; their executions then run straight through to the send, one after the other,
    instead of each stopping halfway for the database. That brings the first receipt
    forward and lets each execution's objects die young (fewer full GC passes over a
    process holding a thousand subscriptions). A failure is left to the field's
    resolver, which tries again and reports it like any field error.
    """
    scope = event.scope
    if scope is None:
        return
    loads = [scope.load_as(fetch, getattr(event, id_attribute), build)
             for name, (fetch, build, id_attribute) in _LOADS.items() if name in fields]
    for outcome in await asyncio.gather(*loads, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.debug("event preload failed (%s); the resolver will retry", type(outcome).__name__)
