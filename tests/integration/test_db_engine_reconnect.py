"""PostgreSQL connections that the server dropped while they sat in the pool (restart,
failover, ``pg_terminate_backend``) are replaced at checkout: the next user gets a working
connection, not an error, and no ping is spent on connections that are fine."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import create_engine
from tests.support.databases import PG_ADMIN_DSN, POSTGRES, fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with fresh_database(POSTGRES, tmp_path) as url:
        engine = create_engine(url)
        try:
            yield engine
        finally:
            await engine.dispose()


async def _terminate(pid: int) -> None:
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(200):  # until the backend is gone
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the backend outlived pg_terminate_backend")
    finally:
        await admin.close()


async def _seen_closed(driver_connection: asyncpg.Connection) -> None:
    """Until the event loop has read the closed socket, as it does between a process's jobs."""
    for _ in range(250):
        if driver_connection.is_closed():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the pooled connection never noticed that its backend was gone")


async def test_a_connection_dropped_while_pooled_is_replaced_without_an_error(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        first = await conn.scalar(text("SELECT pg_backend_pid()"))
        # Which process holds the connection shows in pg_stat_activity.
        assert await conn.scalar(text("SELECT current_setting('application_name')")) == f"emailsync:{os.getpid()}"
        pooled = (await conn.get_raw_connection()).driver_connection
    await _terminate(first)
    await _seen_closed(pooled)
    async with engine.connect() as conn:
        second = await conn.scalar(text("SELECT pg_backend_pid()"))
    assert second != first


async def test_a_healthy_pooled_connection_is_handed_out_without_a_round_trip(engine: AsyncEngine) -> None:
    dialect = engine.sync_engine.dialect
    pings: list[object] = []
    ping = dialect.do_ping
    dialect.do_ping = lambda dbapi_connection: pings.append(dbapi_connection) or ping(dbapi_connection)  # type: ignore[method-assign]
    for _ in range(3):
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
    assert pings == []  # no pre-ping: the API's hot read path pays no extra round trip per checkout
