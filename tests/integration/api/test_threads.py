"""The inbox: ordering, keyset pagination, filters, thread detail, and the SQL budget."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from api.ids import to_global_id
from tests.integration.api.conftest import Api

PAGE = """
query ($first: Int, $after: String, $filter: ThreadFilter) {
  threads(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id subject snippet lastMessageAt messageCount unreadCount
      contact { id email name source }
      lastMessage { id direction status subject snippet isRead sentAt from { email name } to { email } } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


@contextmanager
def count_statements(api: Api) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(api.rt.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(api.rt.engine.sync_engine, "before_cursor_execute", record)


def gid(kind: str, id_: object) -> str:
    return to_global_id(kind, id_)  # type: ignore[arg-type]


async def test_threads_are_most_recent_first_with_contact_and_last_message(api: Api) -> None:
    data = await api.data(PAGE, {"first": 50})
    nodes = [e["node"] for e in data["threads"]["edges"]]
    assert [n["id"] for n in nodes] == [gid("Thread", t) for t in api.seed.threads_a]
    dates = [n["lastMessageAt"] for n in nodes]
    assert dates == sorted(dates, reverse=True)
    first = nodes[0]
    assert first["subject"] == "Subject 0"
    assert first["contact"]["email"] == "Customer0@Client.test"
    assert first["contact"]["source"] == "CRM"
    assert first["lastMessage"]["direction"] == "INBOUND"
    assert first["lastMessage"]["status"] == "SYNCED"
    assert first["lastMessage"]["snippet"] == "reply 0"
    assert first["lastMessage"]["from"] == {"email": "Customer0@Client.test", "name": "Customer 0"}
    assert first["lastMessage"]["to"] == [{"email": "alice@acme.test"}]
    assert data["threads"]["pageInfo"]["hasNextPage"] is False


async def test_keyset_pagination(api: Api) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = await api.data(PAGE, {"first": 3, "after": after})
        conn = data["threads"]
        seen += [e["node"]["id"] for e in conn["edges"]]
        pages += 1
        info = conn["pageInfo"]
        assert info["hasPreviousPage"] is (after is not None)
        assert info["startCursor"] == conn["edges"][0]["cursor"]
        assert info["endCursor"] == conn["edges"][-1]["cursor"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert pages == 3
    assert seen == [gid("Thread", t) for t in api.seed.threads_a]


async def test_invalid_cursor_is_an_error(api: Api) -> None:
    body = await api.gql(PAGE, {"after": "bm90LWEtY3Vyc29y"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_page_size_is_capped(api: Api) -> None:
    data = await api.data(PAGE, {"first": 100000})
    assert len(data["threads"]["edges"]) == len(api.seed.threads_a)


async def test_filters(api: Api) -> None:
    unread = await api.data(PAGE, {"filter": {"unreadOnly": True}})
    assert [e["node"]["id"] for e in unread["threads"]["edges"]] == [
        gid("Thread", t) for i, t in enumerate(api.seed.threads_a) if i % 2 == 0
    ]
    by_contact = await api.data(PAGE, {"filter": {"contactId": gid("Contact", api.seed.contacts_a[1])}})
    assert [e["node"]["id"] for e in by_contact["threads"]["edges"]] == [
        gid("Thread", t) for i, t in enumerate(api.seed.threads_a) if i % 3 == 1
    ]
    by_connection = await api.data(PAGE, {"filter": {"connectionId": gid("EmailConnection", api.seed.connection_a)}})
    assert len(by_connection["threads"]["edges"]) == len(api.seed.threads_a)
    garbage = await api.data(PAGE, {"filter": {"contactId": "garbage"}})
    assert garbage["threads"]["edges"] == []


async def test_thread_page_is_one_statement(api: Api) -> None:
    await api.data(PAGE, {"first": 5})  # warm the credential cache
    # A page size no other test uses, so the response cache cannot answer.
    with count_statements(api) as statements:
        data = await api.data(PAGE, {"first": 47})
    assert len(data["threads"]["edges"]) == 7
    assert len(statements) == 1, statements


async def test_thread_detail_with_messages_bodies_and_attachments(api: Api) -> None:
    query = """
    query ($id: ID!, $after: String) {
      thread(id: $id) {
        id subject
        lastMessage { text html }
        messages(first: 1, after: $after) {
          edges { cursor node { id direction origin subject html text isRead deletedInMailbox sentAt
            from { email } to { email name } cc { email } bcc { email } attachments { id filename contentType size }
            thread { id } } }
          pageInfo { hasNextPage endCursor }
        }
      }
    }
    """
    thread_id = gid("Thread", api.seed.thread_with_attachment)
    first_page = (await api.data(query, {"id": thread_id}))["thread"]
    assert first_page["lastMessage"] == {"text": "reply 1", "html": "<p>reply 1</p>"}
    first_message = first_page["messages"]["edges"][0]["node"]
    assert first_message["direction"] == "OUTBOUND"
    assert first_message["origin"] == "CRM"
    assert first_message["html"] == "<p>first 1</p>"
    assert first_message["attachments"] == [
        {"id": first_message["attachments"][0]["id"], "filename": "quote.pdf", "contentType": "application/pdf", "size": 1234}
    ]
    assert first_message["thread"] == {"id": thread_id}
    assert first_page["messages"]["pageInfo"]["hasNextPage"] is True
    second_page = (await api.data(query, {"id": thread_id, "after": first_page["messages"]["pageInfo"]["endCursor"]}))
    messages = second_page["thread"]["messages"]
    assert [e["node"]["text"] for e in messages["edges"]] == ["reply 1"]
    assert messages["edges"][0]["node"]["cc"] == [{"email": "cc@client.test"}]
    assert messages["pageInfo"]["hasNextPage"] is False


async def test_unknown_thread_is_null(api: Api) -> None:
    data = await api.data("query ($id: ID!) { thread(id: $id) { id } }", {"id": gid("Thread", api.seed.contacts_a[0])})
    assert data["thread"] is None
    data = await api.data("query ($id: ID!) { thread(id: $id) { id } }", {"id": "!!not-base64!!"})
    assert data["thread"] is None
