"""Shared fixtures: fresh databases (SQLite file or a new PostgreSQL database) and keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.support.databases import create_database, drop_database
from tests.support.private_redis import private_redis  # noqa: F401  (a fixture, offered to every test)


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    url, name = await create_database(request.param, tmp_path)
    try:
        yield url
    finally:
        await drop_database(name)
