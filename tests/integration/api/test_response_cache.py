"""Shared reads (threads, thread, contacts) are served from a cache that events invalidate."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import event

from emailsync.asgi import create_app
from sync_engine.events import DomainEvent, EventType
from tests.integration.api.conftest import Api, build_runtime, close_runtime, start_server
from tests.integration.api.test_threads import count_statements

QUERY = "query ($first: Int) { threads(first: $first) { edges { node { subject contact { name } } } } }"


async def warm(api: Api, variables: dict, as_: str = "user_a") -> dict:
    """Run until the cache holds the result (its invalidation listener starts asynchronously)."""
    for _ in range(100):
        first = await api.data(QUERY, variables, as_=as_)
        with count_statements(api) as statements:
            again = await api.data(QUERY, variables, as_=as_)
        if not statements:
            assert again == first
            return first
        await asyncio.sleep(0.01)
    raise AssertionError("never served from the cache")


async def test_repeated_page_is_served_without_sql(api: Api) -> None:
    await warm(api, {"first": 41})
    await api.data("{ viewer { kind } }", as_="user_a2")  # its credential check is cached too
    with count_statements(api) as statements:
        await api.data(QUERY, {"first": 41}, as_="user_a2")  # any member of the sub-account
    assert statements == []


async def test_concurrent_misses_share_one_execution(api: Api) -> None:
    """Single flight: identical reads arriving while the page is computed wait for that
    execution instead of each running it (what made the cached p99 spike at TTL ends)."""
    await warm(api, {"first": 46})  # the invalidation listener is live, the credential cached
    with count_statements(api) as one_execution:
        alone = await api.data(QUERY, {"first": 47})
    assert one_execution
    with count_statements(api) as statements:
        together = await asyncio.gather(*(api.data(QUERY, {"first": 48}) for _ in range(12)))
    assert all(result == alone for result in together)
    assert len(statements) == len(one_execution), statements


async def test_cache_is_per_sub_account(api: Api) -> None:
    mine = await warm(api, {"first": 42})
    theirs = await api.data(QUERY, {"first": 42}, as_="user_b")
    assert theirs != mine
    assert [e["node"]["subject"] for e in theirs["threads"]["edges"]] == ["Rival secret"]


async def test_an_event_invalidates(api: Api) -> None:
    await warm(api, {"first": 43})
    await api.emit(
        DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id=str(api.seed.sub_a), thread_id=str(api.seed.threads_a[0]))
    )
    for _ in range(100):
        with count_statements(api) as statements:
            await api.data(QUERY, {"first": 43})
        if statements:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the event did not invalidate the cached page")


async def test_a_contact_mutation_invalidates(api: Api) -> None:
    before = await warm(api, {"first": 44})
    new_name = f"Renamed {uuid.uuid4().hex[:6]}"
    contact_gid = (await api.data("{ contacts(first: 1) { edges { node { id email } } } }"))["contacts"]["edges"][0]["node"]["id"]
    update = "mutation ($id: ID!, $name: String) { updateContact(input: {id: $id, name: $name}) { userErrors { code } } }"
    await api.data(update, {"id": contact_gid, "name": new_name})
    after = await api.data(QUERY, {"first": 44})
    assert after != before
    assert new_name in str(after)


async def test_viewer_dependent_documents_are_not_cached(api: Api) -> None:
    query = "{ threads(first: 45) { edges { node { subject } } } emailConnection { address } }"
    for _ in range(3):
        with count_statements(api) as statements:
            await api.data(query)
        assert statements  # executed every time


async def test_cache_can_be_switched_off(api: Api) -> None:
    """EMAILSYNC_RESPONSE_CACHE=false: every shared read executes (operators may prefer freshness)."""
    settings = api.settings.model_copy(update={"response_cache": False})
    rt = await build_runtime(settings)
    server = await start_server(create_app(settings, runtime=rt))
    executed: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        executed.append(statement)

    event.listen(rt.engine.sync_engine, "before_cursor_execute", record)
    try:
        headers = {"Authorization": api.auth_header("user_a")}
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            for _ in range(3):
                before = len(executed)
                response = await http.post("/graphql", json={"query": QUERY, "variables": {"first": 41}}, headers=headers)
                assert response.status_code == 200 and "errors" not in response.json()
                assert any("threads" in s for s in executed[before:])  # the page was read from the database
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", record)
        await server.stop()
        await close_runtime(rt)
