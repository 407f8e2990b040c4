"""Validation cost is bounded: fragments spread many times are measured once each.

Before, the depth and alias rules walked a fragment again at every spread: a chain of
20 fragments that each spread the next one twice (under 1 KB) cost 2^20 walks and held
the server for minutes. The documents cache is bounded by size and keyed by a digest.
"""

from __future__ import annotations

import time

from api.schema import (
    DOCUMENT_CACHE_BYTES,
    DOCUMENT_CACHE_SIZE,
    MAX_CACHED_DOCUMENT_CHARS,
    document_caches,
)
from tests.integration.api.conftest import Api


def doubling_chain(levels: int, leaf: str = "kind") -> str:
    fragments = [f"fragment F{i} on Viewer {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on Viewer {{ {leaf} }}")
    return "{ viewer { ...F0 } } " + " ".join(fragments)


async def _timed(api: Api, query: str, accept: str = "application/json") -> tuple[float, dict]:
    started = time.perf_counter()
    response = await api.post(query, auth=api.auth_header("user_a"), accept=accept)
    elapsed = time.perf_counter() - started
    expected = 200 if accept == "application/json" else 400
    assert response.status_code == expected, response.text
    return elapsed, response.json()


async def test_doubling_fragment_chain_is_refused_in_milliseconds(api: Api) -> None:
    for leaf in ("kind", "k: kind"):  # without aliases, and with one alias at the end of the chain
        query = doubling_chain(20, leaf)
        assert len(query.encode()) < 1024
        elapsed, body = await _timed(api, query)
        assert "data" not in body, body
        [error] = body["errors"]
        assert "fields once its fragments are expanded" in error["message"] or "aliases found" in error["message"]
        assert "1048576" in error["message"] or "1048577" in error["message"]
        assert elapsed < 0.5, f"refusing the chain took {elapsed * 1000:.0f} ms"
    # The same with the spec's media type: a request error, 400.
    elapsed, body = await _timed(api, doubling_chain(20), accept="application/graphql-response+json")
    assert "data" not in body and elapsed < 0.5


async def test_fragments_within_the_limits_still_work(api: Api) -> None:
    # 2^10 = 1,024 fields once expanded: allowed (the limit is 5,000).
    body = await api.gql(doubling_chain(10))
    assert body == {"data": {"viewer": {"kind": "USER"}}}


async def test_depth_counts_through_fragments(api: Api) -> None:
    # Each fragment nests two fields; the chain reaches depth 2 * levels + 1.
    def chain(levels: int) -> str:
        fragments = [
            f"fragment D{i} on Thread {{ lastMessage {{ thread {{ ...D{i + 1} }} }} }}" for i in range(levels)
        ]
        fragments.append(f"fragment D{levels} on Thread {{ id }}")
        return '{ thread(id: "x") { ...D0 } } ' + " ".join(fragments)

    assert "errors" not in await api.gql(chain(5))  # depth 11
    body = await api.gql(chain(6))  # depth 13
    assert "data" not in body
    assert body["errors"][0]["message"] == "'anonymous' exceeds maximum operation depth of 12"


async def test_aliases_count_every_spread(api: Api) -> None:
    aliases = " ".join(f"a{i}: kind" for i in range(16))
    fragment = f"fragment A on Viewer {{ {aliases} }}"
    assert "errors" not in await api.gql(f"{{ viewer {{ ...A }} }} {fragment}")
    body = await api.gql(f"{{ viewer {{ ...A }} again: viewer {{ ...A }} }} {fragment}")
    assert body["errors"][0]["message"] == "33 aliases found. Allowed: 30"


async def test_fragment_cycle_is_refused_not_looped(api: Api) -> None:
    body = await api.gql("{ viewer { ...A } } fragment A on Viewer { kind ...B } fragment B on Viewer { ...A }")
    assert "data" not in body
    assert any("Cannot spread fragment" in e["message"] for e in body["errors"]), body


async def test_documents_are_cached_by_digest_within_a_byte_budget(api: Api) -> None:
    marker = "cache-probe-" + str(time.time_ns())
    small = f"query Small {{ viewer {{ kind }} }} # {marker}"
    assert (await api.gql(small))["data"] == {"viewer": {"kind": "USER"}}
    keys = list(document_caches.parsed._items)
    # Keys are digests: the text itself is not what the cache is indexed by.
    assert all(isinstance(key[0], bytes) and len(key[0]) == 32 for key in keys)
    assert not any(marker in repr(key) for key in keys)
    count = len(document_caches.parsed)
    assert (await api.gql(small))["data"] == {"viewer": {"kind": "USER"}}
    assert len(document_caches.parsed) == count  # a hit, not a second entry

    # A document past the cacheable size is answered and never cached.
    large = f"{{ viewer {{ kind }} }} # {'x' * MAX_CACHED_DOCUMENT_CHARS}"
    before = document_caches.parsed.bytes
    assert (await api.gql(large))["data"] == {"viewer": {"kind": "USER"}}
    assert document_caches.parsed.bytes <= before  # nothing added (an eviction at most)

    # Many unique documents just under that size: the caches stay within their budget.
    padding = "y" * (MAX_CACHED_DOCUMENT_CHARS - 100)
    for i in range(DOCUMENT_CACHE_BYTES // len(padding) + 8):
        assert (await api.gql(f"{{ viewer {{ kind }} }} # {i} {padding}"))["data"] == {"viewer": {"kind": "USER"}}
    for cache in (document_caches.parsed, document_caches.validated):
        assert cache.bytes <= DOCUMENT_CACHE_BYTES
        assert len(cache) <= DOCUMENT_CACHE_SIZE
