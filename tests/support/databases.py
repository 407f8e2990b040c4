"""Fresh databases for tests: a SQLite file, or a new PostgreSQL database dropped afterwards."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import asyncpg

from db.migrate import upgrade_async

PG_ADMIN_DSN = os.environ.get("EMAILSYNC_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("EMAILSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pg_url(db_name: str) -> str:
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{host_part}/{db_name}"


async def create_database(kind: str, tmp_path: Path) -> tuple[str, str | None]:
    """A migrated, empty database; returns (SQLAlchemy URL, PostgreSQL database name to drop)."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / f'test-{uuid.uuid4().hex[:8]}.db'}"
        await upgrade_async(url)
        return url, None
    name = f"emailsync_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = pg_url(name)
    await upgrade_async(url)
    return url, name


async def drop_database(name: str | None) -> None:
    if name is None:
        return
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
