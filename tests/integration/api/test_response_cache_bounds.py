"""The response cache holds a bounded number of sub-accounts: the least recently used is
evicted with its event-channel listener."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from api import response_cache
from api.response_cache import ResponseCache
from tests.integration.api.conftest import Api


async def listening_becomes(cache: ResponseCache, expected: set[uuid.UUID]) -> set[uuid.UUID]:
    """The listening set once it equals ``expected`` (listeners start and stop as tasks)."""
    for _ in range(500):
        if cache.listening() == expected:
            break
        await asyncio.sleep(0.01)
    return cache.listening()


async def test_idle_sub_accounts_are_evicted_with_their_listeners(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response_cache, "MAX_SUB_ACCOUNTS", 3)
    cache = ResponseCache(api.rt)
    tenants = [uuid.uuid4() for _ in range(7)]
    try:
        for tenant in tenants[:6]:
            cache.generation(tenant)  # a read of that sub-account starts its listener
        assert await listening_becomes(cache, set(tenants[3:6])) == set(tenants[3:6])  # the oldest three went
        cache.generation(tenants[3])  # used again: now the most recent
        cache.generation(tenants[6])  # so the next eviction takes tenants[4]
        expected = {tenants[3], tenants[5], tenants[6]}
        assert await listening_becomes(cache, expected) == expected
    finally:
        await cache.close()
    assert cache.listening() == set()
