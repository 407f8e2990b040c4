"""Shared fixtures: fresh databases (SQLite file or a new PostgreSQL database) and keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.support.databases import BACKENDS, fresh_database
from tests.support.private_redis import private_redis  # noqa: F401  (a fixture, offered to every test)


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database of each backend, dropped after the test."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url
