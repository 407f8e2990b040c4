"""Sync-skip reads ("why didn't my email sync?"), scoped to a sub-account and,
for non-admin callers, to the mailbox owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import SyncSkip
from db.repositories.paging import Page, split_page

skips_t = SyncSkip.__table__

# Mail with the sub-account's own users is recorded by the importer as an opaque row with
# this reason (to keep its count exact across replays); it is shown only as a count.
CONFIDENTIAL_REASON = "confidential"
_COLUMNS = [
    skips_t.c[n]
    for n in ("id", "connection_id", "user_id", "reason", "detail", "subject", "from_email", "sent_at", "created_at")
]


async def list_sync_skips(
    conn: AsyncConnection,
    sub_account_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    owner_user_id: uuid.UUID | None = None,
    connection_id: uuid.UUID | None = None,
) -> Page[Row[Any]]:
    """Newest first. ``owner_user_id`` restricts to one user's mailboxes (non-admins)."""
    s = skips_t
    stmt = select(*_COLUMNS).where(s.c.sub_account_id == sub_account_id, s.c.reason != CONFIDENTIAL_REASON)
    if owner_user_id is not None:
        stmt = stmt.where(s.c.user_id == owner_user_id)
    if connection_id is not None:
        stmt = stmt.where(s.c.connection_id == connection_id)
    if after is not None:
        stmt = stmt.where(tuple_(s.c.created_at, s.c.id) < tuple_(after[0], after[1]))
    stmt = stmt.order_by(s.c.created_at.desc(), s.c.id.desc()).limit(limit + 1)
    return split_page((await conn.execute(stmt)).all(), limit)


async def sync_skips_by_ids(
    conn: AsyncConnection,
    sub_account_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    *,
    owner_user_id: uuid.UUID | None = None,
) -> list[Row[Any]]:
    if not ids:
        return []
    stmt = select(*_COLUMNS).where(
        skips_t.c.sub_account_id == sub_account_id, skips_t.c.id.in_(list(ids)), skips_t.c.reason != CONFIDENTIAL_REASON
    )
    if owner_user_id is not None:
        stmt = stmt.where(skips_t.c.user_id == owner_user_id)
    return list((await conn.execute(stmt)).all())
