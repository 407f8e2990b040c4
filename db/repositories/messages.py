"""The message aggregate's writes outside a page import: read-state write-backs, reply
targets, and the thread counters a single CRM message changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ConnectionStatus, EmailConnection, Message, Thread


async def mark_read_writeback_pending(session: AsyncSession, sub_account_id: uuid.UUID, message_ids: list[uuid.UUID]) -> None:
    if message_ids:
        await session.execute(
            update(Message)
            .where(Message.sub_account_id == sub_account_id, Message.id.in_(message_ids))
            .values(read_writeback_pending=True)
            .execution_options(synchronize_session=False)
        )


async def clear_read_writeback(
    session: AsyncSession, connection_id: uuid.UUID, provider_ids: list[str], is_read: bool
) -> None:
    """Written back: only where the CRM still holds that value (a later opposite change
    stays pending for its own write-back)."""
    if provider_ids:
        await session.execute(
            update(Message)
            .where(Message.connection_id == connection_id, Message.provider_message_id.in_(provider_ids),
                   Message.is_read.is_(is_read))
            .values(read_writeback_pending=False)
            .execution_options(synchronize_session=False)
        )


async def pending_read_writebacks(session: AsyncSession, limit: int = 5000) -> list[tuple[uuid.UUID, bool, str]]:
    """(connection, read state, provider id) of CRM read-state changes not yet in live mailboxes."""
    rows = await session.execute(
        select(Message.connection_id, Message.is_read, Message.provider_message_id)
        .join(EmailConnection, EmailConnection.id == Message.connection_id)
        .where(Message.read_writeback_pending.is_(True), Message.provider_message_id.is_not(None),
               EmailConnection.is_current.is_(True), EmailConnection.status.in_(ConnectionStatus.LIVE))
        .limit(limit)
    )
    # The join and the WHERE make the (nullable) connection and provider id non-null here.
    return cast(list[tuple[uuid.UUID, bool, str]], [(r[0], r[1], r[2]) for r in rows])


async def latest_message_with_provider_id(
    session: AsyncSession, sub_account_id: uuid.UUID, thread_id: uuid.UUID, connection_id: uuid.UUID
) -> Message | None:
    """The newest message of a thread that exists in the given mailbox (the one to reply to)."""
    return await session.scalar(
        select(Message)
        .where(
            Message.sub_account_id == sub_account_id,
            Message.thread_id == thread_id,
            Message.connection_id == connection_id,
            Message.provider_message_id.is_not(None),
            Message.deleted_in_mailbox.is_(False),
        )
        .order_by(Message.sent_at.desc().nulls_last(), Message.created_at.desc())
        .limit(1)
    )


async def add_to_thread_counters(
    session: AsyncSession, thread_id: uuid.UUID, *, sent_at: datetime | None, unread: bool, snippet: str
) -> None:
    values: dict[str, object] = {
        "message_count": Thread.message_count + 1,
        "unread_count": Thread.unread_count + (1 if unread else 0),
    }
    await session.execute(update(Thread).where(Thread.id == thread_id).values(**values))
    if sent_at is not None:
        await session.execute(
            update(Thread)
            .where(
                Thread.id == thread_id,
                or_(Thread.last_message_at.is_(None), Thread.last_message_at <= sent_at),
            )
            .values(last_message_at=sent_at, snippet=snippet)
        )


async def recount_unread(session: AsyncSession, thread_id: uuid.UUID) -> None:
    unread = (
        select(func.count(Message.id))
        .where(and_(Message.thread_id == thread_id, Message.is_read.is_(False), Message.direction == "inbound"))
        .scalar_subquery()
    )
    await session.execute(update(Thread).where(Thread.id == thread_id).values(unread_count=unread))


async def set_thread_read_state(session: AsyncSession, sub_account_id: uuid.UUID, thread_id: uuid.UUID,
                                is_read: bool) -> list[Message]:
    """Mark a thread's inbound messages read or unread; the messages that changed."""
    changed = list(await session.scalars(
        select(Message).where(Message.sub_account_id == sub_account_id, Message.thread_id == thread_id,
                              Message.direction == "inbound", Message.is_read.is_not(is_read))
    ))
    await session.execute(
        update(Message)
        .where(Message.sub_account_id == sub_account_id, Message.thread_id == thread_id,
               Message.direction == "inbound")
        .values(is_read=is_read)
        .execution_options(synchronize_session=False)
    )
    return changed


async def thread_in_sub_account(session: AsyncSession, sub_account_id: uuid.UUID,
                                thread_id: uuid.UUID) -> Thread | None:
    return await session.scalar(select(Thread).where(Thread.id == thread_id, Thread.sub_account_id == sub_account_id))
