"""The bounded document caches, and that a cached validation keys on the rules."""

from __future__ import annotations

from types import SimpleNamespace

from api.document_cache import BoundedCache, document_digest
from api.schema import schema


def test_bounded_by_bytes_least_recently_used_first_out() -> None:
    cache = BoundedCache(max_entries=100, max_bytes=10_000)
    for i in range(10):
        cache.put(i, f"doc {i}", 2_000)
    assert cache.bytes <= 10_000
    kept = [i for i in range(10) if cache.get(i) is not None]
    assert 0 < len(kept) < 10 and kept[-1] == 9  # the most recent ones
    oldest = kept[0]
    cache.get(oldest)  # used again: now the most recent
    cache.put("new", "x", 2_000)
    assert cache.get(oldest) is not None and cache.get(kept[1]) is None


def test_bounded_by_count() -> None:
    cache = BoundedCache(max_entries=3, max_bytes=1 << 20)
    for i in range(5):
        cache.put(i, i, 1)
    assert len(cache) == 3 and cache.get(1) is None and cache.get(4) == 4


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    cache = BoundedCache(max_entries=3, max_bytes=1_000)
    cache.put("a", "a", 10)
    cache.put("huge", "h", 5_000)
    assert cache.get("huge") is None and cache.get("a") == "a"


def test_replacing_an_entry_keeps_the_byte_count() -> None:
    cache = BoundedCache(max_entries=3, max_bytes=100_000)
    cache.put("a", 1, 100)
    first = cache.bytes
    cache.put("a", 2, 300)
    assert len(cache) == 1 and cache.get("a") == 2
    assert cache.bytes == first + 200
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0


def test_digest_survives_lone_surrogates() -> None:
    assert len(document_digest("{ viewer { kind } } # \ud800")) == 32


def _context(introspection: bool) -> SimpleNamespace:
    return SimpleNamespace(runtime=SimpleNamespace(settings=SimpleNamespace(introspection=introspection)), viewer=None)


async def test_validation_cache_keys_on_the_rules() -> None:
    # The same text, validated with and without the introspection rule, in either order.
    query = "{ __schema { queryType { name } } }"
    for introspection in (True, False, True, False):
        result = await schema.execute(query, context_value=_context(introspection))
        if introspection:
            assert result.errors is None and result.data == {"__schema": {"queryType": {"name": "Query"}}}
        else:
            assert result.data is None and "introspection has been disabled" in result.errors[0].message
