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
from sqlalchemy import ColumnElement, Connection, case, func, select, text
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


@dataclass(frozen=True)
class LiveConnectionsSummary:
    """All current, live connections at once, however many there are."""

    count: int
    # The oldest of their ``synced_at`` (None when there is no live connection).
    oldest_synced_at: datetime | None
    pending_requests: int


def _synced_at() -> ColumnElement[datetime]:
    c = connections_t.c
    return func.coalesce(c.last_sync_at, c.connected_at, c.created_at)


def _pending() -> ColumnElement[int]:
    c = connections_t.c
    behind = c.sync_requested_seq - c.sync_done_seq
    return case((behind > 0, behind), else_=0)


def _live() -> tuple[ColumnElement[bool], ...]:
    c = connections_t.c
    return (c.is_current.is_(True), c.status.in_(ConnectionStatus.LIVE))


async def live_connection_sync_states(conn: AsyncConnection, limit: int) -> list[ConnectionSyncState]:
    """The ``limit`` current, live connections whose sync is furthest behind (longest since
    their last sync), with how far behind each is."""
    c = connections_t.c
    stmt = select(c.id, _synced_at(), _pending()).where(*_live()).order_by(_synced_at(), c.id).limit(limit)
    return [ConnectionSyncState(row[0], row[1], int(row[2] or 0)) for row in await conn.execute(stmt)]


async def live_connections_summary(conn: AsyncConnection) -> LiveConnectionsSummary:
    stmt = select(func.count(), func.min(_synced_at()), func.coalesce(func.sum(_pending()), 0)).where(*_live())
    count, oldest, pending = (await conn.execute(stmt)).one()
    return LiveConnectionsSummary(int(count), oldest, int(pending))


async def current_connections_by_status(conn: AsyncConnection) -> dict[str, int]:
    c = connections_t.c
    stmt = select(c.status, func.count()).where(c.is_current.is_(True)).group_by(c.status)
    return {status: int(count) for status, count in await conn.execute(stmt)}
