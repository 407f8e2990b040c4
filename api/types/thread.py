"""Threads: a conversation with one contact, as listed in the inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from operator import itemgetter
from typing import Annotated, Any

import strawberry

from api.context import Info
from api.ids import decode_time_cursor, encode_time_cursor, to_global_id
from api.types.contact import Contact, contact_columns, contact_from_values
from api.types.message import Message, message_columns, message_from_row, message_from_values
from api.types.node import Node
from api.types.pagination import Connection, connection_from_page, keyset_after
from db.repositories import threads as thread_reads
from db.repositories.paging import clamp_page_size
from db.repositories.threads import THREAD_ROW_LABELS


@strawberry.type(description="A conversation between a user's mailbox and a contact, synced both ways.")
class Thread(Node):
    subject: str = strawberry.field(description="Subject of the conversation.")
    snippet: str = strawberry.field(description="Preview of the last message.")
    last_message_at: datetime | None = strawberry.field(description="When the last message was sent or received.")
    message_count: int = strawberry.field(description="Number of messages.")
    unread_count: int = strawberry.field(description="Number of unread messages.")
    contact: Contact | None = strawberry.field(description="The contact the conversation is with.")
    last_message: Message | None = strawberry.field(description="The most recent message (bodies load on demand).")
    db_id: strawberry.Private[uuid.UUID]
    connection_db_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="Messages in reading order (oldest first).")
    async def messages(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size (default 50, at most 100).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor of the item to start after.")] = None,
    ) -> Connection[Message]:
        viewer = info.context.require_member()
        keyset = keyset_after(after, decode_time_cursor)
        limit = clamp_page_size(first)
        async with info.context.runtime.engine.connect() as conn:
            page = await thread_reads.list_messages(conn, viewer.sub_account_id, self.db_id, limit=limit, after=keyset)
        return connection_from_page(
            page, message_from_row, lambda row: encode_time_cursor(row.order_key, row.id), after=after
        )


# Thread page rows (``threads.list_threads`` / ``threads_by_ids``) are read by position.
_thread_values = itemgetter(*(THREAD_ROW_LABELS.index(f"t_{name}") for name in (
    "id", "subject", "snippet", "last_message_at", "message_count", "unread_count", "connection_id"
)))
_contact_values = contact_columns(THREAD_ROW_LABELS, "c_")
_message_values = message_columns(THREAD_ROW_LABELS, "m_")
_CONTACT_ID = THREAD_ROW_LABELS.index("c_id")
_MESSAGE_ID = THREAD_ROW_LABELS.index("m_id")
_CURSOR_KEY = itemgetter(THREAD_ROW_LABELS.index("t_last_message_at"), THREAD_ROW_LABELS.index("t_id"))


def thread_from_row(row: Any) -> Thread:
    """From a thread page row (columns ``THREAD_ROW_LABELS`` of ``db.repositories.threads``)."""
    id_, subject, snippet, last_message_at, message_count, unread_count, connection_id = _thread_values(row)
    return Thread(
        id=strawberry.ID(to_global_id("Thread", id_)),
        subject=subject,
        snippet=snippet,
        last_message_at=last_message_at,
        message_count=message_count,
        unread_count=unread_count,
        contact=contact_from_values(_contact_values(row)) if row[_CONTACT_ID] is not None else None,
        last_message=message_from_values(_message_values(row)) if row[_MESSAGE_ID] is not None else None,
        db_id=id_,
        connection_db_id=connection_id,
    )


def thread_cursor(row: Any) -> str:
    return encode_time_cursor(*_CURSOR_KEY(row))
