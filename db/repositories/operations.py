"""Queries for operating the service: liveness of the database, the schema revision, and
the sync figures that ``/metrics`` reports at scrape time.

Unlike every other repository these read across sub-accounts: they serve the operator,
never a client, and return counts, timestamps and connection ids only (no address, no
token, nothing a tenant wrote).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.migrate import MIGRATIONS_DIR
from db.models import ConnectionStatus, EmailConnection

connections_t = EmailConnection.__table__


async def ping(conn: AsyncConnection) -> None:
    """The cheapest statement that proves the database answers."""
    await conn.execute(text("SELECT 1"))


def head_revisions() -> frozenset[str]:
    """The schema revisions this code expects (Alembic heads of db/migrations)."""
    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions())


async def schema_revisions(conn: AsyncConnection) -> frozenset[str]:
    """The revisions the database is at; empty when it was never migrated."""

    def read(sync_conn: Connection) -> frozenset[str]:
        return frozenset(MigrationContext.configure(sync_conn).get_current_heads())

    return await conn.run_sync(read)


@dataclass(frozen=True)
class ConnectionSyncState:
    connection_id: uuid.UUID
    # When the mailbox last finished a sync (when it was connected, before the first one).
    synced_at: datetime | None
    pending_requests: int


async def live_connection_sync_states(conn: AsyncConnection) -> list[ConnectionSyncState]:
    """Every current, live connection with how far its sync is behind."""
    c = connections_t.c
    stmt = (
        select(c.id, func.coalesce(c.last_sync_at, c.connected_at, c.created_at),
               c.sync_requested_seq - c.sync_done_seq)
        .where(c.is_current.is_(True), c.status.in_(ConnectionStatus.LIVE))
        .order_by(c.id)
    )
    return [ConnectionSyncState(row[0], row[1], max(int(row[2] or 0), 0)) for row in await conn.execute(stmt)]


async def current_connections_by_status(conn: AsyncConnection) -> dict[str, int]:
    c = connections_t.c
    stmt = select(c.status, func.count()).where(c.is_current.is_(True)).group_by(c.status)
    return {status: int(count) for status, count in await conn.execute(stmt)}
