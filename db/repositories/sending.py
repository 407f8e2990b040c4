"""Queries of the sender side: the sub-account relay, idempotency keys, bulk sends.

Every function takes the sub-account it is scoped to, except the worker-side ones that
address a row by its own id (a job carries only that id).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.models import (
    BulkSend,
    BulkSendStatus,
    IdempotencyKey,
    Message,
    OutboxItem,
    OutboxStatus,
    SubAccountEmailProvider,
)


async def relay_of(session: AsyncSession, sub_account_id: uuid.UUID) -> SubAccountEmailProvider | None:
    return await session.scalar(
        select(SubAccountEmailProvider).where(SubAccountEmailProvider.sub_account_id == sub_account_id)
    )


async def save_relay(session: AsyncSession, sub_account_id: uuid.UUID, values: dict[str, Any]) -> SubAccountEmailProvider:
    row = await relay_of(session, sub_account_id)
    if row is None:
        row = SubAccountEmailProvider(sub_account_id=sub_account_id, **values)
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    await session.flush()
    return row


# ---- idempotency keys


async def find_idempotency_key(
    session: AsyncSession, sub_account_id: uuid.UUID, caller: str, key: str, now: datetime
) -> IdempotencyKey | None:
    return await session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.sub_account_id == sub_account_id,
            IdempotencyKey.caller == caller,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at > now,
        )
    )


async def drop_expired_idempotency_key(
    session: AsyncSession, sub_account_id: uuid.UUID, caller: str, key: str, now: datetime
) -> None:
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.sub_account_id == sub_account_id,
            IdempotencyKey.caller == caller,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at <= now,
        )
    )


async def purge_idempotency_keys(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return result.rowcount or 0


# ---- bulk sends


async def bulk_send(session: AsyncSession, sub_account_id: uuid.UUID, bulk_send_id: uuid.UUID) -> BulkSend | None:
    return await session.scalar(
        select(BulkSend).where(BulkSend.id == bulk_send_id, BulkSend.sub_account_id == sub_account_id)
    )


async def bulk_sends_by_ids(conn: AsyncConnection, sub_account_id: uuid.UUID, ids: list[uuid.UUID], *,
                            owner_user_id: uuid.UUID | None = None) -> list[Any]:
    """``owner_user_id``: only that user's bulk sends (what a non-admin may see)."""
    query = select(BulkSend.__table__).where(BulkSend.id.in_(ids), BulkSend.sub_account_id == sub_account_id)
    if owner_user_id is not None:
        query = query.where(BulkSend.user_id == owner_user_id)
    return list(await conn.execute(query))


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
        claimed = await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == outbox_id, OutboxItem.status == OutboxStatus.PENDING,
                   OutboxItem.next_attempt_at <= now)
            .values(attempts=OutboxItem.attempts + 1, next_attempt_at=lease_until)
        )
        if claimed.rowcount == 1:
            return outbox_id
    return None


async def next_bulk_attempt_at(session: AsyncSession, bulk_send_id: uuid.UUID) -> datetime | None:
    """When the earliest pending delivery of a bulk send is due (None: nothing pending)."""
    return await session.scalar(
        select(func.min(OutboxItem.next_attempt_at)).where(
            OutboxItem.bulk_send_id == bulk_send_id, OutboxItem.status == OutboxStatus.PENDING
        )
    )


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
    return result.rowcount == 1


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
