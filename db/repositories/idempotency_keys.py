"""Idempotency keys of send mutations, scoped to the sub-account and caller that used them.

``add`` raises ``AlreadyExists`` when a concurrent request recorded the same key first
(it waits on the unique index until that request's transaction ends).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import IdempotencyKey
from db.repositories.writes import flush_row, rows_changed


async def find(session: AsyncSession, sub_account_id: uuid.UUID, caller: str, key: str,
               now: datetime) -> IdempotencyKey | None:
    """The unexpired key."""
    return await session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.sub_account_id == sub_account_id,
            IdempotencyKey.caller == caller,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at > now,
        )
    )


async def drop_expired(session: AsyncSession, sub_account_id: uuid.UUID, caller: str, key: str,
                       now: datetime) -> None:
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.sub_account_id == sub_account_id,
            IdempotencyKey.caller == caller,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at <= now,
        )
    )


async def add(session: AsyncSession, row: IdempotencyKey) -> None:
    await flush_row(session, row)


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    """Every sub-account's expired keys (the periodic purge)."""
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return rows_changed(result)
