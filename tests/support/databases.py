"""Fresh databases for tests and benchmarks: the one place that makes and drops them.

``fresh_database(backend, tmp_path)`` yields the SQLAlchemy URL of a new, migrated, empty
database and drops it afterwards: a SQLite file under ``tmp_path``, or a PostgreSQL
database of its own on the test server (``EMAILSYNC_TEST_PG_ADMIN``). ``BACKENDS``
parametrizes a fixture over both. ``create_database`` / ``drop_database`` are the same
two halves, for a caller whose database outlives one ``async with``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from db.migrate import upgrade_async

PG_ADMIN_DSN = os.environ.get("EMAILSYNC_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("EMAILSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

SQLITE, POSTGRES = "sqlite", "postgres"
# pytest params for a fixture that runs its tests on both backends.
BACKENDS = (SQLITE, pytest.param(POSTGRES, marks=pytest.mark.postgres))


def pg_url(db_name: str) -> str:
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{host_part}/{db_name}"


async def create_database(backend: str, tmp_path: Path, *, revision: str | None = "head") -> tuple[str, str | None]:
    """A new, empty database migrated to ``revision`` (None: no schema at all); returns its
    SQLAlchemy URL and the PostgreSQL database name to hand to ``drop_database``."""
    if backend == SQLITE:
        url = f"sqlite+aiosqlite:///{tmp_path / f'test-{uuid.uuid4().hex[:8]}.db'}"
        name = None
    elif backend == POSTGRES:
        name = f"emailsync_t_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = pg_url(name)
    else:
        raise ValueError(f"unknown database backend {backend!r}")
    if revision is not None:
        try:
            await upgrade_async(url, revision)
        except BaseException:
            await drop_database(name)
            raise
    return url, name


async def drop_database(name: str | None) -> None:
    """Drop a PostgreSQL database ``create_database`` made (None: a SQLite file, which
    goes with its temporary directory)."""
    if name is None:
        return
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_database(backend: str, tmp_path: Path, *, revision: str | None = "head") -> AsyncIterator[str]:
    """The URL of a new database migrated to ``revision``, dropped on exit."""
    url, name = await create_database(backend, tmp_path, revision=revision)
    try:
        yield url
    finally:
        await drop_database(name)
