"""Email connection reads for the API.

Only display columns are ever selected: token ciphertext, sync cursors, watch ids and
the clientState hash never leave the database through this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import EmailConnection, SyncSkip
from db.repositories.skips import CONFIDENTIAL_REASON

connections_t = EmailConnection.__table__
skips_t = SyncSkip.__table__

PUBLIC_COLUMNS = (
    "id",
    "sub_account_id",
    "user_id",
    "provider",
    "address",
    "display_name",
    "status",
    "status_detail",
    "is_current",
    "last_sync_at",
    "messages_synced",
    "confidential_skipped",
    "connected_at",
    "disconnected_at",
    "created_at",
)
_COLUMNS = [connections_t.c[name] for name in PUBLIC_COLUMNS]


async def current_connection_of_user(
    conn: AsyncConnection, sub_account_id: uuid.UUID, user_id: uuid.UUID
) -> Row[Any] | None:
    stmt = select(*_COLUMNS).where(
        connections_t.c.sub_account_id == sub_account_id,
        connections_t.c.user_id == user_id,
        connections_t.c.is_current.is_(True),
    )
    return (await conn.execute(stmt)).first()


async def current_connections(conn: AsyncConnection, sub_account_id: uuid.UUID) -> list[Row[Any]]:
    stmt = (
        select(*_COLUMNS)
        .where(connections_t.c.sub_account_id == sub_account_id, connections_t.c.is_current.is_(True))
        .order_by(connections_t.c.address, connections_t.c.id)
    )
    return list((await conn.execute(stmt)).all())


async def connections_by_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    if not ids:
        return []
    stmt = select(*_COLUMNS).where(connections_t.c.sub_account_id == sub_account_id, connections_t.c.id.in_(list(ids)))
    return list((await conn.execute(stmt)).all())


async def skip_counts_by_connection_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not ids:
        return {}
    stmt = (
        select(skips_t.c.connection_id, func.count())
        .where(
            skips_t.c.sub_account_id == sub_account_id,
            skips_t.c.connection_id.in_(list(ids)),
            # Confidential mail has its own counter on the connection.
            skips_t.c.reason != CONFIDENTIAL_REASON,
        )
        .group_by(skips_t.c.connection_id)
    )
    return {row[0]: row[1] for row in (await conn.execute(stmt)).all()}
