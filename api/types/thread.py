"""Threads: a conversation with one contact, as listed in the inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import strawberry

from api.context import Info
from api.errors import BadUserInput
from api.ids import decode_time_cursor, encode_time_cursor, to_global_id
from api.types.contact import Contact, _source
from api.types.message import Message, last_message_from_thread_row, message_from_row
from api.types.node import Node
from api.types.pagination import Connection, make_connection
from db.repositories import threads as thread_reads
from db.repositories.paging import clamp_page_size


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
        keyset = None
        if after is not None:
            keyset = decode_time_cursor(after)
            if keyset is None:
                raise BadUserInput("invalid cursor")
        limit = clamp_page_size(first)
        async with info.context.runtime.engine.connect() as conn:
            page = await thread_reads.list_messages(conn, viewer.sub_account_id, self.db_id, limit=limit, after=keyset)
        nodes = [message_from_row(row) for row in page.rows]
        cursors = [encode_time_cursor(row.order_key, row.id) for row in page.rows]
        return make_connection(nodes, cursors, has_next=page.has_next, had_cursor=after is not None)


def thread_from_row(row: Any) -> Thread:
    """From an inbox row (``t_``/``c_``/``m_`` columns, see ``db.repositories.threads``)."""
    contact = None
    if row.c_id is not None:
        contact = Contact(
            id=strawberry.ID(to_global_id("Contact", row.c_id)),
            email=row.c_email,
            name=row.c_name,
            source=_source(row.c_source),
            created_at=row.c_created_at,
            db_id=row.c_id,
        )
    return Thread(
        id=strawberry.ID(to_global_id("Thread", row.t_id)),
        subject=row.t_subject,
        snippet=row.t_snippet,
        last_message_at=row.t_last_message_at,
        message_count=row.t_message_count,
        unread_count=row.t_unread_count,
        contact=contact,
        last_message=last_message_from_thread_row(row),
        db_id=row.t_id,
        connection_db_id=row.t_connection_id,
    )


def thread_cursor(row: Any) -> str:
    return encode_time_cursor(row.t_last_message_at, row.t_id)
