"""The outbox: one row per CRM send, claimed by the attempt that delivers it.

A claim bumps ``attempts`` and pushes ``next_attempt_at`` past the attempt's lease, in
one conditional UPDATE: the attempt number is the fence of the send checkpoint
(``save_checkpoint``). The worker side addresses rows by their own id (a job carries
only that id); the sub-account scope is the row's own.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OutboxItem, OutboxStatus
from db.repositories.writes import rows_changed
from vocabulary import SenderRoute


async def add_item(session: AsyncSession, item: OutboxItem) -> None:
    session.add(item)
    await session.flush()


async def item_by_id(session: AsyncSession, outbox_id: uuid.UUID) -> OutboxItem | None:
    return await session.get(OutboxItem, outbox_id)


async def route_of(session: AsyncSession, outbox_id: uuid.UUID) -> SenderRoute | None:
    return await session.scalar(select(OutboxItem.route).where(OutboxItem.id == outbox_id))


async def claim(session: AsyncSession, outbox_id: uuid.UUID, now: datetime, lease_until: datetime) -> bool:
    """Take a pending item that is due (no other attempt holds it): one more attempt."""
    claimed = await session.execute(
        update(OutboxItem)
        .where(OutboxItem.id == outbox_id, OutboxItem.status == OutboxStatus.PENDING, OutboxItem.next_attempt_at <= now)
        .values(attempts=OutboxItem.attempts + 1, next_attempt_at=lease_until)
    )
    return rows_changed(claimed) == 1


async def save_checkpoint(session: AsyncSession, outbox_id: uuid.UUID, attempt: int, state: dict[str, Any]) -> bool:
    """Store an attempt's send progress; False when that attempt is no longer the item's
    latest claim of a pending item (a newer attempt took over)."""
    saved = await session.execute(
        update(OutboxItem)
        .where(OutboxItem.id == outbox_id, OutboxItem.attempts == attempt, OutboxItem.status == OutboxStatus.PENDING)
        .values(checkpoint=state)
    )
    return rows_changed(saved) == 1


async def mark_done(session: AsyncSession, outbox_id: uuid.UUID) -> None:
    await session.execute(
        update(OutboxItem).where(OutboxItem.id == outbox_id).values(status=OutboxStatus.DONE, last_error=None)
    )


async def finish(session: AsyncSession, outbox_id: uuid.UUID, status: OutboxStatus, error: str) -> None:
    """A final outcome other than done: failed, or uncertain (may have gone out once)."""
    await session.execute(update(OutboxItem).where(OutboxItem.id == outbox_id).values(status=status, last_error=error))


async def reschedule(session: AsyncSession, outbox_id: uuid.UUID, at: datetime, reason: str) -> None:
    await session.execute(
        update(OutboxItem).where(OutboxItem.id == outbox_id).values(next_attempt_at=at, last_error=reason)
    )


async def due_single_items(session: AsyncSession, now: datetime, limit: int = 100) -> list[tuple[uuid.UUID, int]]:
    """Pending single sends due now, with their attempt count (bulk deliveries have their drain)."""
    rows = await session.execute(
        select(OutboxItem.id, OutboxItem.attempts)
        .where(OutboxItem.status == OutboxStatus.PENDING, OutboxItem.next_attempt_at <= now,
               OutboxItem.bulk_send_id.is_(None))
        .order_by(OutboxItem.next_attempt_at)
        .limit(limit)
    )
    return [(row.id, row.attempts) for row in rows]


# ---- a bulk send's deliveries


async def claim_next_bulk_delivery(
    session: AsyncSession, bulk_send_id: uuid.UUID, now: datetime, lease_until: datetime
) -> uuid.UUID | None:
    """Take the next due delivery of a bulk send (its lease pushed to ``lease_until``)."""
    candidates = await session.scalars(
        select(OutboxItem.id)
        .where(OutboxItem.bulk_send_id == bulk_send_id, OutboxItem.status == OutboxStatus.PENDING,
               OutboxItem.next_attempt_at <= now)
        .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
        .limit(5)
    )
    for outbox_id in candidates:
        if await claim(session, outbox_id, now, lease_until):
            return outbox_id
    return None


async def next_bulk_attempt_at(session: AsyncSession, bulk_send_id: uuid.UUID) -> datetime | None:
    """When the earliest pending delivery of a bulk send is due (None: nothing pending)."""
    return await session.scalar(
        select(func.min(OutboxItem.next_attempt_at)).where(
            OutboxItem.bulk_send_id == bulk_send_id, OutboxItem.status == OutboxStatus.PENDING
        )
    )
