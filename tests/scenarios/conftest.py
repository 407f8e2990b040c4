"""Fixtures for end-to-end scenarios: one sandbox per session, a full stack per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.server import SandboxServer
from tests.support.databases import POSTGRES, REDIS_URL, SQLITE, fresh_database
from tests.support.private_redis import PrivateRedis
from tests.support.stack import Stack, running_stack, trust


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture(params=["sqlite-embedded", "postgres-redis-worker"])
async def stack(request: pytest.FixtureRequest, sandbox_server: SandboxServer, tmp_path: Path,
                encryption_key: str) -> AsyncIterator[Stack]:
    kind = request.param
    distributed = kind.startswith("postgres")
    marker = request.node.get_closest_marker("stack_settings")
    overrides = marker.kwargs if marker else {}
    try:
        async with (fresh_database(POSTGRES if distributed else SQLITE, tmp_path) as url,
                    running_stack(database_url=url, redis_url=REDIS_URL if distributed else None,
                                  sandbox_url=sandbox_server.base_url, ca_file=sandbox_server.ca_file,
                                  encryption_key=encryption_key, separate_worker=distributed, **overrides) as s):
            yield s
    finally:
        await sandbox_server_cleanup(sandbox_server.base_url, sandbox_server.ca_file)


@pytest.fixture
async def api_without_worker(request: pytest.FixtureRequest, sandbox_server: SandboxServer, tmp_path: Path,
                             encryption_key: str) -> AsyncIterator[Stack]:
    """PostgreSQL + the shared Redis with no worker: the test starts (and kills) its own.
    Settings overrides come from the ``stack_settings`` marker (short leases, say)."""
    marker = request.node.get_closest_marker("stack_settings")
    try:
        async with (fresh_database(POSTGRES, tmp_path) as url,
                    running_stack(database_url=url, redis_url=REDIS_URL, sandbox_url=sandbox_server.base_url,
                                  ca_file=sandbox_server.ca_file, encryption_key=encryption_key,
                                  separate_worker=False, **(marker.kwargs if marker else {})) as s):
            yield s
    finally:
        await sandbox_server_cleanup(sandbox_server.base_url, sandbox_server.ca_file)


@pytest.fixture
async def stack_on_private_redis(sandbox_server: SandboxServer, private_redis: PrivateRedis, tmp_path: Path,
                                 encryption_key: str) -> AsyncIterator[Stack]:
    """PostgreSQL, and a Redis of the test's own (queue and bus) that it may stop and start;
    no worker: a test starts one when it needs it."""
    async with (fresh_database(POSTGRES, tmp_path) as url,
                running_stack(database_url=url, redis_url=private_redis.url, sandbox_url=sandbox_server.base_url,
                              ca_file=sandbox_server.ca_file, encryption_key=encryption_key,
                              separate_worker=False) as stack):
        yield stack


async def sandbox_server_cleanup(base_url: str, ca_file: str) -> None:
    """Faults are global to the sandbox: never let one test's leak into the next."""
    async with httpx.AsyncClient(base_url=base_url, verify=trust(ca_file)) as client:
        await client.delete("/_sandbox/faults")
