"""Contacts CRUD: validation, case-insensitive uniqueness, search and pagination."""

from __future__ import annotations

import uuid

from tests.integration.api.conftest import Api

CREATE = """mutation ($input: CreateContactInput!) { createContact(input: $input) {
  contact { id email name source } userErrors { field message code } } }"""
UPDATE = """mutation ($input: UpdateContactInput!) { updateContact(input: $input) {
  contact { id email name } userErrors { field message code } } }"""
DELETE = """mutation ($input: DeleteContactInput!) { deleteContact(input: $input) {
  deletedContactId userErrors { field code } } }"""
LIST = """query ($first: Int, $after: String, $search: String) { contacts(first: $first, after: $after, search: $search) {
  edges { cursor node { id email name } } pageInfo { hasNextPage endCursor } } }"""


def unique_email(prefix: str = "new") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@Example.test"


async def create(api: Api, email: str, name: str | None = None, as_: str = "user_a") -> dict:
    data = await api.data(CREATE, {"input": {"email": email, "name": name}}, as_=as_)
    return data["createContact"]


async def test_create_contact(api: Api) -> None:
    email = unique_email()
    result = await create(api, f"  {email} ", "Dana")
    assert result["userErrors"] == []
    assert result["contact"]["email"] == email
    assert result["contact"]["name"] == "Dana"
    assert result["contact"]["source"] == "CRM"


async def test_duplicate_email_case_insensitively(api: Api) -> None:
    email = unique_email()
    assert (await create(api, email))["userErrors"] == []
    result = await create(api, email.upper())
    assert result["contact"] is None
    assert result["userErrors"][0]["code"] == "DUPLICATE_EMAIL"
    assert result["userErrors"][0]["field"] == "email"
    # The seeded contacts too (stored mixed-case).
    assert (await create(api, "customer0@client.TEST"))["userErrors"][0]["code"] == "DUPLICATE_EMAIL"


async def test_same_email_in_another_sub_account_is_fine(api: Api) -> None:
    email = unique_email("shared")
    assert (await create(api, email, as_="user_b"))["userErrors"] == []
    result = await create(api, email, as_="admin_a")
    assert result["userErrors"] == [], result


async def test_invalid_addresses_are_refused(api: Api) -> None:
    for bad in ["not-an-email", "a@b", "two@@at.test", "sp ace@x.test", "a@-x.test", "<a@x.test>", "a,b@x.test", ""]:
        result = await create(api, bad)
        assert result["userErrors"][0]["code"] == "INVALID_EMAIL", bad
        assert result["contact"] is None


async def test_line_breaks_are_refused(api: Api) -> None:
    result = await create(api, "victim@x.test\r\nBcc: attacker@evil.test")
    assert result["userErrors"][0]["code"] == "INVALID_EMAIL"
    result = await create(api, unique_email(), "Eve\r\nBcc: attacker@evil.test")
    assert result["userErrors"][0] == {"field": "name", "message": "name must not contain line breaks", "code": "INVALID_NAME"}


async def test_update_contact(api: Api) -> None:
    contact = (await create(api, unique_email(), "Old"))["contact"]
    new_email = unique_email("renamed")
    data = await api.data(UPDATE, {"input": {"id": contact["id"], "email": new_email}})
    assert data["updateContact"]["contact"] == {"id": contact["id"], "email": new_email, "name": "Old"}
    data = await api.data(UPDATE, {"input": {"id": contact["id"], "name": None}})
    assert data["updateContact"]["contact"]["name"] is None
    data = await api.data(UPDATE, {"input": {"id": contact["id"], "name": "New"}})
    assert data["updateContact"]["contact"]["name"] == "New"
    # Changing only the case of the address is not a duplicate of itself.
    data = await api.data(UPDATE, {"input": {"id": contact["id"], "email": new_email.lower()}})
    assert data["updateContact"]["userErrors"] == []


async def test_update_to_a_taken_email(api: Api) -> None:
    contact = (await create(api, unique_email()))["contact"]
    data = await api.data(UPDATE, {"input": {"id": contact["id"], "email": "CUSTOMER1@client.test"}})
    assert data["updateContact"]["userErrors"][0]["code"] == "DUPLICATE_EMAIL"


async def test_delete_contact(api: Api) -> None:
    contact = (await create(api, unique_email()))["contact"]
    data = await api.data(DELETE, {"input": {"id": contact["id"]}})
    assert data["deleteContact"] == {"deletedContactId": contact["id"], "userErrors": []}
    data = await api.data(DELETE, {"input": {"id": contact["id"]}})
    assert data["deleteContact"]["userErrors"] == [{"field": "id", "code": "NOT_FOUND"}]
    node = await api.data("query ($id: ID!) { node(id: $id) { id } }", {"id": contact["id"]})
    assert node == {"node": None}


async def test_search_and_pagination(api: Api) -> None:
    tag = uuid.uuid4().hex[:6]
    emails = sorted(f"zz-{tag}-{i}@search.test" for i in range(5))
    for i, email in enumerate(emails):
        await create(api, email, f"Searchable {tag} {i}")
    seen: list[str] = []
    after = None
    while True:
        data = (await api.data(LIST, {"first": 2, "after": after, "search": tag}))["contacts"]
        seen += [e["node"]["email"] for e in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert seen == emails
    by_name = (await api.data(LIST, {"search": f"SEARCHABLE {tag} 3"}))["contacts"]["edges"]
    assert [e["node"]["email"] for e in by_name] == [emails[3]]
    # LIKE wildcards in the search term are literal.
    assert (await api.data(LIST, {"search": "%"}))["contacts"]["edges"] == []
