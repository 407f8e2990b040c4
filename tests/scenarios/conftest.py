"""Fixtures for end-to-end scenarios: one sandbox per session, a full stack per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sandbox.server import SandboxServer
from tests.support.databases import REDIS_URL, create_database, drop_database
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture(params=["sqlite-embedded", "postgres-redis-worker"])
async def stack(request: pytest.FixtureRequest, sandbox_server: SandboxServer, tmp_path: Path,
                encryption_key: str) -> AsyncIterator[Stack]:
    kind = request.param
    url, db_name = await create_database("sqlite" if kind.startswith("sqlite") else "postgres", tmp_path)
    distributed = kind.startswith("postgres")
    try:
        async with running_stack(database_url=url, redis_url=REDIS_URL if distributed else None,
                                 sandbox_url=sandbox_server.base_url, ca_file=sandbox_server.ca_file,
                                 encryption_key=encryption_key, separate_worker=distributed) as s:
            yield s
    finally:
        await drop_database(db_name)
