"""Live events pushed over subscriptions.

The event bus carries ids only; the objects are loaded (scoped to the subscriber's
sub-account) when a subscriber asks for them, so an event never shows more than a
query would.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.types.email_connection import EmailConnection, email_connection_from_row
from api.types.message import Message, message_from_row
from api.types.thread import Thread, thread_from_row


@strawberry.enum(description="What happened.")
class SyncEventType(enum.Enum):
    MESSAGE_ADDED = strawberry.enum_value("message_added", description="A message was added to a thread.")
    MESSAGE_UPDATED = strawberry.enum_value(
        "message_updated", description="A message changed (read state, deleted in mailbox, delivery status)."
    )
    THREAD_CREATED = strawberry.enum_value("thread_created", description="A new thread was started.")
    CONNECTION_CHANGED = strawberry.enum_value(
        "connection_changed", description="A mailbox connection changed state or finished a sync."
    )
    EVENTS_MISSED = strawberry.enum_value(
        "events_missed",
        description="The live stream was interrupted (the server lost its event bus for a while) and events may "
        "have been missed: refetch what you show. Carries no thread, message or connection.",
    )


@strawberry.type(description="A change in the sub-account's mail, delivered live.")
class SyncEvent:
    type: SyncEventType = strawberry.field(description="What happened.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    thread_db_id: strawberry.Private[uuid.UUID | None]
    message_db_id: strawberry.Private[uuid.UUID | None]
    connection_db_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The thread concerned, if any.")
    async def thread(self, info: Info) -> Thread | None:
        return await load_as(info.context.loaders.thread, self.thread_db_id, thread_from_row)

    @strawberry.field(description="The message concerned, if any.")
    async def message(self, info: Info) -> Message | None:
        return await load_as(info.context.loaders.message, self.message_db_id, message_from_row)

    @strawberry.field(description="The mailbox connection concerned, if any.")
    async def email_connection(self, info: Info) -> EmailConnection | None:
        if self.connection_db_id is None:
            return None
        row = await info.context.loaders.connection.load(self.connection_db_id)
        if row is None:
            return None
        viewer = info.context.require_member()
        # Connection details are for their owner and the sub-account's admins.
        if not viewer.is_admin and row.user_id != viewer.user_id:
            return None
        return email_connection_from_row(row)
