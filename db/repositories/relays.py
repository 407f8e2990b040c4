"""The sub-account's email provider (its SMTP relay): one row per sub-account."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import SubAccountEmailProvider


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
