"""Threads and messages: the API's reads, and what a CRM send reads and writes, each
scoped to one sub-account.

The inbox list is the hottest query of the service: one Core statement returns a page
of threads with their contact and their last message (a correlated sub-select picks
the last message id per thread, the outer joins fetch the rows). Ordering is the
``ix_threads_recent`` index (sub_account_id, last_message_at, id), walked backwards,
with a keyset cursor so deep pages cost the same as the first one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, Row, Text, and_, bindparam, cast, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.models import Attachment, Contact, Message, Thread
from db.repositories.paging import Page, split_page
from vocabulary import MessageStatus

threads_t = Thread.__table__
contacts_t = Contact.__table__
messages_t = Message.__table__
attachments_t = Attachment.__table__

# Everything of a message but its bodies: what a list row shows.
MESSAGE_SUMMARY_COLUMNS = (
    "id",
    "thread_id",
    "connection_id",
    "direction",
    "origin",
    "status",
    "subject",
    "from_email",
    "from_name",
    "to_addresses",
    "cc_addresses",
    "bcc_addresses",
    "snippet",
    "is_read",
    "deleted_in_mailbox",
    "sent_at",
    "created_at",
    "error",
    "route",
    "route_reason",
    "kind",
)
MESSAGE_BODY_COLUMNS = ("html", "text")
_ADDRESS_COLUMNS = ("to_addresses", "cc_addresses", "bcc_addresses")

THREAD_COLUMNS = (
    "id",
    "subject",
    "snippet",
    "last_message_at",
    "message_count",
    "unread_count",
    "contact_id",
    "connection_id",
    "user_id",
    "created_at",
)
CONTACT_COLUMNS = ("id", "email", "name", "source", "created_at")

# The columns of a thread page row, in order: the API maps these rows by position
# (a Row's attribute lookup by name costs ~10x an index, times ~40 columns x 50 rows).
THREAD_ROW_LABELS = (
    tuple(f"t_{name}" for name in THREAD_COLUMNS)
    + tuple(f"c_{name}" for name in CONTACT_COLUMNS)
    + tuple(f"m_{name}" for name in MESSAGE_SUMMARY_COLUMNS)
)


@lru_cache(maxsize=1)
def _thread_page_select() -> Any:
    """Threads + contact + last message, one row per thread, columns ``THREAD_ROW_LABELS``
    (the last message's ``m_*_addresses`` as JSON text).

    Built once: constructing aliases and joins costs more than running the query
    from SQLAlchemy's compiled cache."""
    t = threads_t.alias("t")
    c = contacts_t.alias("c")
    m = messages_t.alias("m")
    m2 = messages_t.alias("m2")
    last_message_id = (
        select(m2.c.id)
        .where(m2.c.thread_id == t.c.id)
        .order_by(func.coalesce(m2.c.sent_at, m2.c.created_at).desc(), m2.c.id.desc())
        .limit(1)
        .correlate(t)
        .scalar_subquery()
    )
    columns = [t.c[name].label(f"t_{name}") for name in THREAD_COLUMNS]
    columns += [c.c[name].label(f"c_{name}") for name in CONTACT_COLUMNS]
    # Recipients stay JSON text here: decoding three JSON columns per row costs more than
    # the rest of the row, and an inbox rarely shows them (the API decodes on demand).
    columns += [
        (cast(m.c[name], Text) if name in _ADDRESS_COLUMNS else m.c[name]).label(f"m_{name}")
        for name in MESSAGE_SUMMARY_COLUMNS
    ]
    joined = t.outerjoin(c, and_(c.c.id == t.c.contact_id, c.c.sub_account_id == t.c.sub_account_id)).outerjoin(
        m, m.c.id == last_message_id
    )
    return select(*columns).select_from(joined), t


@lru_cache(maxsize=16)
def _list_threads_select(after: bool, contact: bool, connection: bool, unread_only: bool) -> Any:
    """One statement per filter combination, values as bind parameters: building the
    clauses (and SQLAlchemy's cache key for them) once instead of on every request."""
    stmt, t = _thread_page_select()
    stmt = stmt.where(t.c.sub_account_id == bindparam("sub_account_id"), t.c.last_message_at.is_not(None))
    if after:
        after_key = tuple_(bindparam("after_at", type_=t.c.last_message_at.type), bindparam("after_id", type_=t.c.id.type))
        stmt = stmt.where(tuple_(t.c.last_message_at, t.c.id) < after_key)
    if contact:
        stmt = stmt.where(t.c.contact_id == bindparam("contact_id"))
    if connection:
        stmt = stmt.where(t.c.connection_id == bindparam("connection_id"))
    if unread_only:
        stmt = stmt.where(t.c.unread_count > 0)
    return stmt.order_by(t.c.last_message_at.desc(), t.c.id.desc()).limit(bindparam("limit", type_=Integer))


async def list_threads(
    conn: AsyncConnection,
    sub_account_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    contact_id: uuid.UUID | None = None,
    connection_id: uuid.UUID | None = None,
    unread_only: bool = False,
) -> Page[Row[Any]]:
    """Most recent first. Threads without any message yet (no ``last_message_at``) are
    not listed: they have nothing to show, and keeping NULLs out keeps the index order."""
    stmt = _list_threads_select(after is not None, contact_id is not None, connection_id is not None, unread_only)
    params: dict[str, Any] = {"sub_account_id": sub_account_id, "limit": limit + 1}
    if after is not None:
        params["after_at"], params["after_id"] = after
    if contact_id is not None:
        params["contact_id"] = contact_id
    if connection_id is not None:
        params["connection_id"] = connection_id
    rows = (await conn.execute(stmt, params)).all()
    return split_page(rows, limit)


async def threads_by_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    """Same row shape as ``list_threads``; ids of other sub-accounts are simply absent."""
    if not ids:
        return []
    stmt, t = _thread_page_select()
    stmt = stmt.where(t.c.sub_account_id == sub_account_id, t.c.id.in_(list(ids)))
    return list((await conn.execute(stmt)).all())


def _message_order_key() -> Any:
    # Queued CRM sends have no sent_at yet: they sort by creation time.
    return func.coalesce(messages_t.c.sent_at, messages_t.c.created_at)


async def list_messages(
    conn: AsyncConnection,
    sub_account_id: uuid.UUID,
    thread_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> Page[Row[Any]]:
    """A thread's messages in reading order (oldest first), bodies included."""
    order_key = _message_order_key()
    columns = [*(messages_t.c[name] for name in MESSAGE_SUMMARY_COLUMNS + MESSAGE_BODY_COLUMNS),
               order_key.label("order_key")]
    stmt = select(*columns).where(
        messages_t.c.sub_account_id == sub_account_id, messages_t.c.thread_id == thread_id
    )
    if after is not None:
        stmt = stmt.where(tuple_(order_key, messages_t.c.id) > tuple_(after[0], after[1]))
    stmt = stmt.order_by(order_key, messages_t.c.id).limit(limit + 1)
    rows = (await conn.execute(stmt)).all()
    return split_page(rows, limit)


async def messages_by_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID], *, with_bodies: bool = True
) -> list[Row[Any]]:
    if not ids:
        return []
    names = MESSAGE_SUMMARY_COLUMNS + (MESSAGE_BODY_COLUMNS if with_bodies else ())
    order_key = _message_order_key()
    stmt = select(*[*(messages_t.c[name] for name in names), order_key.label("order_key")]).where(
        messages_t.c.sub_account_id == sub_account_id, messages_t.c.id.in_(list(ids))
    )
    return list((await conn.execute(stmt)).all())


async def message_bodies_by_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    """(id, html, text): bodies are loaded apart from list rows, only when asked for."""
    if not ids:
        return []
    stmt = select(*[messages_t.c[name] for name in ("id", "html", "text")]).where(
        messages_t.c.sub_account_id == sub_account_id, messages_t.c.id.in_(list(ids))
    )
    return list((await conn.execute(stmt)).all())


async def attachments_by_message_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    """Attachment metadata (never the content) of the given messages."""
    if not message_ids:
        return []
    a = attachments_t
    stmt = (
        select(*[a.c[name] for name in ("id", "message_id", "filename", "content_type", "size")])
        .where(a.c.sub_account_id == sub_account_id, a.c.message_id.in_(list(message_ids)))
        .order_by(a.c.message_id, a.c.created_at, a.c.id)
    )
    return list((await conn.execute(stmt)).all())


# ---- a CRM send: its thread, message and attachments (ORM rows, in the caller's transaction)


async def message_in_sub_account(session: AsyncSession, sub_account_id: uuid.UUID,
                                 message_id: uuid.UUID) -> Message | None:
    return await session.scalar(select(Message).where(Message.id == message_id, Message.sub_account_id == sub_account_id))


async def attachments_of_message(session: AsyncSession, sub_account_id: uuid.UUID,
                                 message_id: uuid.UUID) -> list[Attachment]:
    """With their content: what a send hands to the provider."""
    rows = await session.scalars(
        select(Attachment).where(Attachment.message_id == message_id, Attachment.sub_account_id == sub_account_id)
    )
    return list(rows)


async def reply_parent(session: AsyncSession, sub_account_id: uuid.UUID, thread_id: uuid.UUID) -> Message | None:
    """The newest message of the thread that has a Message-ID: the one a reply refers to."""
    return await session.scalar(
        select(Message)
        .where(Message.sub_account_id == sub_account_id, Message.thread_id == thread_id,
               Message.message_id_header.is_not(None))
        .order_by(Message.sent_at.desc().nulls_last(), Message.created_at.desc())
        .limit(1)
    )


async def add_thread(session: AsyncSession, thread: Thread) -> None:
    session.add(thread)
    await session.flush()


async def add_message(session: AsyncSession, message: Message, attachments: Sequence[Attachment] = ()) -> None:
    session.add(message)
    await session.flush()
    session.add_all(attachments)
    await session.flush()


async def set_provider_message_id(session: AsyncSession, sub_account_id: uuid.UUID, message_id: uuid.UUID,
                                  provider_id: str) -> None:
    await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.sub_account_id == sub_account_id)
        .values(provider_message_id=provider_id)
    )


async def record_sent(session: AsyncSession, sub_account_id: uuid.UUID, message_id: uuid.UUID, *,
                      error: str | None, provider_id: str | None, message_id_header: str | None) -> None:
    """A CRM send the provider accepted; ``error`` names recipients it refused. The provider
    id and Message-ID it reports replace ours when given."""
    values: dict[str, Any] = {"status": MessageStatus.SENT, "error": error}
    if provider_id:
        values["provider_message_id"] = provider_id
    if message_id_header:
        values["message_id_header"] = message_id_header
    await session.execute(
        update(Message).where(Message.id == message_id, Message.sub_account_id == sub_account_id).values(**values)
    )


async def record_unsent(session: AsyncSession, sub_account_id: uuid.UUID, message_id: uuid.UUID,
                        status: MessageStatus, error: str) -> None:
    """A CRM send's final outcome other than sent: failed, or uncertain."""
    await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.sub_account_id == sub_account_id)
        .values(status=status, error=error)
    )


async def set_provider_thread_key(session: AsyncSession, sub_account_id: uuid.UUID, thread_id: uuid.UUID,
                                  thread_key: str) -> None:
    """The mailbox's conversation id, learnt from the first send (never replaced)."""
    await session.execute(
        update(Thread)
        .where(Thread.id == thread_id, Thread.sub_account_id == sub_account_id, Thread.provider_thread_key.is_(None))
        .values(provider_thread_key=thread_key)
    )
