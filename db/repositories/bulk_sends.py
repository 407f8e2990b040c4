"""Bulk sends: the row, its per-recipient deliveries (thread + message + outbox row each),
its counters and its drain lease.

API reads and ``bulk_send`` take the sub-account they are scoped to; the drain's
functions address the bulk send by its own id (a job carries only that id).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.base import Base
from db.models import BulkSend, BulkSendStatus, Message, OutboxItem, OutboxStatus, Thread
from db.repositories.writes import rows_changed


async def bulk_send(session: AsyncSession, sub_account_id: uuid.UUID, bulk_send_id: uuid.UUID) -> BulkSend | None:
    return await session.scalar(
        select(BulkSend).where(BulkSend.id == bulk_send_id, BulkSend.sub_account_id == sub_account_id)
    )


async def bulk_send_by_id(session: AsyncSession, bulk_send_id: uuid.UUID) -> BulkSend | None:
    """For the drain job (the id comes from our own queue, never a client)."""
    return await session.get(BulkSend, bulk_send_id)


async def bulk_sends_by_ids(conn: AsyncConnection, sub_account_id: uuid.UUID, ids: list[uuid.UUID], *,
                            owner_user_id: uuid.UUID | None = None) -> list[Any]:
    """``owner_user_id``: only that user's bulk sends (what a non-admin may see)."""
    query = select(BulkSend.__table__).where(BulkSend.id.in_(ids), BulkSend.sub_account_id == sub_account_id)
    if owner_user_id is not None:
        query = query.where(BulkSend.user_id == owner_user_id)
    return list(await conn.execute(query))


def _values(row: Base) -> dict[str, object]:
    # Unset columns are left out, so their defaults apply.
    table = row.__table__
    return {c.key: getattr(row, c.key) for c in table.columns if getattr(row, c.key) is not None}


async def add_bulk_send(session: AsyncSession, bulk: BulkSend, threads: Sequence[Thread],
                        messages: Sequence[Message], items: Sequence[OutboxItem]) -> None:
    """Record a bulk send with its deliveries. The deliveries' rows carry their ids already."""
    session.add(bulk)
    await session.flush()
    # Core executemany: a thousand recipients are three statements, not 3,000 ORM flushes.
    await session.execute(insert(Thread), [_values(t) for t in threads])
    await session.execute(insert(Message), [_values(m) for m in messages])
    await session.execute(insert(OutboxItem), [_values(i) for i in items])


async def recount_bulk_send(session: AsyncSession, bulk_send_id: uuid.UUID, now: datetime) -> None:
    """Counters from the deliveries themselves (a crash between two updates cannot skew
    them); completed when nothing is pending any more."""
    counts = (
        await session.execute(
            select(
                # An uncertain delivery was handed over (at most once): it counts as sent.
                func.count().filter(OutboxItem.status.in_((OutboxStatus.DONE, OutboxStatus.UNCERTAIN))),
                func.count().filter(OutboxItem.status == OutboxStatus.FAILED),
                func.count().filter(OutboxItem.status == OutboxStatus.PENDING),
            ).where(OutboxItem.bulk_send_id == bulk_send_id)
        )
    ).one()
    sent, failed, pending = counts
    await session.execute(
        update(BulkSend)
        .where(BulkSend.id == bulk_send_id)
        .values(
            sent_count=sent,
            failed_count=failed,
            status=BulkSendStatus.COMPLETED if pending == 0 else BulkSendStatus.SENDING,
            completed_at=case((BulkSend.completed_at.is_(None), now if pending == 0 else None),
                              else_=BulkSend.completed_at),
        )
    )


async def take_drain_lease(session: AsyncSession, bulk_send_id: uuid.UUID, now: datetime, lease: timedelta) -> bool:
    """Start draining a bulk send unless a live drain holds it."""
    result = await session.execute(
        update(BulkSend)
        .where(BulkSend.id == bulk_send_id,
               or_(BulkSend.drain_lease_until.is_(None), BulkSend.drain_lease_until <= now))
        .values(drain_lease_until=now + lease, status=BulkSendStatus.SENDING)
    )
    return rows_changed(result) == 1


async def renew_drain_lease(session: AsyncSession, bulk_send_id: uuid.UUID, until: datetime | None) -> None:
    """Extend the drain's lease (``None`` releases it)."""
    await session.execute(update(BulkSend).where(BulkSend.id == bulk_send_id).values(drain_lease_until=until))


async def stranded_bulk_sends(session: AsyncSession, now: datetime, limit: int = 100) -> list[uuid.UUID]:
    """Bulk sends with a delivery due now and no live drain (lost job, dead worker)."""
    due = (
        select(OutboxItem.bulk_send_id)
        .where(OutboxItem.bulk_send_id.is_not(None), OutboxItem.status == OutboxStatus.PENDING,
               OutboxItem.next_attempt_at <= now)
        .distinct()
    )
    rows = await session.scalars(
        select(BulkSend.id)
        .where(BulkSend.id.in_(due), or_(BulkSend.drain_lease_until.is_(None), BulkSend.drain_lease_until <= now))
        .limit(limit)
    )
    return list(rows)


async def bulk_deliveries(
    conn: AsyncConnection, sub_account_id: uuid.UUID, bulk_send_id: uuid.UUID, *, limit: int,
    after: uuid.UUID | None
) -> list[Any]:
    """A page of a bulk send's deliveries (message + outbox state), in creation order."""
    query = (
        select(Message.id.label("message_id"), Message.thread_id, Message.to_addresses, Message.status,
               Message.error, Message.sent_at, OutboxItem.attempts)
        .join(OutboxItem, OutboxItem.message_id == Message.id)
        .where(Message.bulk_send_id == bulk_send_id, Message.sub_account_id == sub_account_id)
        .order_by(Message.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(Message.id > after)
    return list(await conn.execute(query))
