"""Contact reads, scoped to one sub-account (writes are in ``sync_engine.services.contacts``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import Contact
from db.repositories.paging import Page, like_pattern, split_page

contacts_t = Contact.__table__
_COLUMNS = [contacts_t.c[name] for name in ("id", "email", "email_normalized", "name", "source", "created_at")]


async def list_contacts(
    conn: AsyncConnection,
    sub_account_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[str, uuid.UUID] | None = None,
    search: str | None = None,
) -> Page[Row[Any]]:
    """Alphabetical by normalized email; ``search`` matches email or name, case-insensitively."""
    c = contacts_t
    stmt = select(*_COLUMNS).where(c.c.sub_account_id == sub_account_id)
    if search:
        pattern = like_pattern(search.strip().lower())
        stmt = stmt.where(
            or_(
                c.c.email_normalized.like(pattern, escape="\\"),
                func.lower(c.c.name).like(pattern, escape="\\"),
            )
        )
    if after is not None:
        stmt = stmt.where(tuple_(c.c.email_normalized, c.c.id) > tuple_(after[0], after[1]))
    stmt = stmt.order_by(c.c.email_normalized, c.c.id).limit(limit + 1)
    return split_page((await conn.execute(stmt)).all(), limit)


async def contacts_by_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    if not ids:
        return []
    stmt = select(*_COLUMNS).where(contacts_t.c.sub_account_id == sub_account_id, contacts_t.c.id.in_(list(ids)))
    return list((await conn.execute(stmt)).all())
