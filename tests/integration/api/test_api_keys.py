"""apiKeys and revokeApiKey: who sees which keys, and a revoked key stops working at once,
in this API process and in another one (a second server on the same database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.ids import to_global_id
from emailsync.asgi import create_app
from tests.integration.api.conftest import Api, start_server

API_KEYS = """{ apiKeys(first: 100) { edges { cursor node { id name prefix scope subAccountId agencyId createdAt
  revokedAt } } pageInfo { hasNextPage endCursor } } }"""
CREATE = """mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { key apiKey { id name prefix scope }
  userErrors { code message } } }"""
REVOKE = """mutation ($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id name scope revokedAt }
  userErrors { field code message } } }"""
VIEWER = "{ viewer { kind } }"


async def create_key(api: Api, name: str, *, as_: str = "admin_a", sub_account: Any = None) -> tuple[str, str]:
    """(global id, secret) of a new key."""
    variables: dict[str, Any] = {"name": name}
    if sub_account is not None:
        variables["subAccountId"] = to_global_id("SubAccount", sub_account)
    payload = (await api.data(CREATE, {"input": variables}, as_=as_))["createApiKey"]
    assert payload["userErrors"] == [], payload
    return payload["apiKey"]["id"], payload["key"]


async def list_keys(api: Api, as_: str) -> dict[str, dict[str, Any]]:
    data = await api.data(API_KEYS, as_=as_)
    return {edge["node"]["name"]: edge["node"] for edge in data["apiKeys"]["edges"]}


async def as_key(http: httpx.AsyncClient, key: str, query: str = VIEWER) -> httpx.Response:
    return await http.post("/graphql", json={"query": query}, headers={"Authorization": f"ApiKey {key}"})


@pytest.fixture
async def other_process(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process over the same database: its own app, authenticator and caches."""
    server = await start_server(create_app(api.settings, runtime=api.rt))
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            yield http
    finally:
        await server.stop()


async def test_admins_and_sub_account_keys_list_their_sub_account_keys(api: Api) -> None:
    key_id, secret = await create_key(api, "listed by admins")
    for who in ("admin_a", "sub_a_key"):
        keys = await list_keys(api, who)
        mine = keys["listed by admins"]
        assert mine["id"] == key_id and mine["scope"] == "SUB_ACCOUNT" and mine["revokedAt"] is None
        assert mine["subAccountId"] == to_global_id("SubAccount", api.seed.sub_a)
        assert secret.startswith(mine["prefix"]) and mine["prefix"] != secret
        assert "partner app" in keys  # the seeded key of sub-account A
        assert not any(k["scope"] == "AGENCY" for k in keys.values())
    # Never the secret, nor its hash.
    from sync_engine.services.accounts import hash_api_key

    text = str(await api.gql(API_KEYS, as_="admin_a"))
    assert secret not in text and hash_api_key(secret) not in text
    # The other tenant sees none of them.
    assert "listed by admins" not in await list_keys(api, "user_b")


async def test_agency_keys_list_the_agency_keys(api: Api) -> None:
    keys = await list_keys(api, "agency_key")
    assert keys["agency 1"]["scope"] == "AGENCY" and keys["agency 1"]["agencyId"] == "agency-1"
    assert keys["partner app"]["scope"] == "SUB_ACCOUNT"  # sub-account A belongs to agency-1
    assert "agency 2" not in keys
    other = await list_keys(api, "other_agency_key")
    assert "agency 2" in other and "agency 1" not in other and "partner app" not in other


async def test_users_without_the_admin_role_see_no_keys(api: Api) -> None:
    body = await api.gql(API_KEYS, as_="user_a")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    response = await api.post(API_KEYS)
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_pagination(api: Api) -> None:
    for i in range(3):
        await create_key(api, f"paged {i}")
    first = (await api.data(API_KEYS.replace("first: 100", "first: 2"), as_="admin_a"))["apiKeys"]
    assert len(first["edges"]) == 2 and first["pageInfo"]["hasNextPage"]
    query = API_KEYS.replace("first: 100", f'first: 100, after: "{first["pageInfo"]["endCursor"]}"')
    rest = (await api.data(query, as_="admin_a"))["apiKeys"]
    seen = [e["node"]["id"] for e in first["edges"] + rest["edges"]]
    assert len(seen) == len(set(seen)) == len(await list_keys(api, "admin_a"))


async def test_revoked_key_gets_401_at_once_in_every_process(api: Api, other_process: httpx.AsyncClient) -> None:
    key_id, secret = await create_key(api, "to revoke")
    # Both processes have just accepted the key (a cache would now hold it).
    assert (await as_key(api.http, secret)).json() == {"data": {"viewer": {"kind": "SUB_ACCOUNT_KEY"}}}
    assert (await as_key(other_process, secret)).json() == {"data": {"viewer": {"kind": "SUB_ACCOUNT_KEY"}}}

    payload = (await api.data(REVOKE, {"id": key_id}, as_="admin_a"))["revokeApiKey"]
    assert payload["userErrors"] == []
    assert payload["apiKey"]["id"] == key_id and payload["apiKey"]["revokedAt"]

    for http in (api.http, other_process):
        response = await as_key(http, secret)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        response = await http.post("/graphql", json={"query": VIEWER}, headers={"X-Api-Key": secret})
        assert response.status_code == 401
    assert (await list_keys(api, "admin_a"))["to revoke"]["revokedAt"] == payload["apiKey"]["revokedAt"]
    # Revoking it again answers the key as it is.
    again = (await api.data(REVOKE, {"id": key_id}, as_="admin_a"))["revokeApiKey"]
    assert again["userErrors"] == [] and again["apiKey"]["revokedAt"] == payload["apiKey"]["revokedAt"]


async def test_a_key_can_revoke_itself(api: Api) -> None:
    key_id, secret = await create_key(api, "self revoking")
    response = await api.post(REVOKE, {"id": key_id}, auth=f"ApiKey {secret}")
    assert response.json()["data"]["revokeApiKey"]["userErrors"] == []
    assert (await as_key(api.http, secret)).status_code == 401


async def test_another_tenants_key_is_not_found(api: Api) -> None:
    key_id, secret = await create_key(api, "not yours")
    for who in ("user_b", "other_agency_key"):
        payload = (await api.data(REVOKE, {"id": key_id}, as_=who))["revokeApiKey"]
        assert payload == {
            "apiKey": None,
            "userErrors": [{"field": "id", "code": "NOT_FOUND", "message": "API key not found"}],
        }
    for bad in ("not-an-id", to_global_id("Thread", api.seed.threads_a[0])):
        payload = (await api.data(REVOKE, {"id": bad}, as_="admin_a"))["revokeApiKey"]
        assert payload["userErrors"][0]["code"] == "NOT_FOUND"
    body = await api.gql(REVOKE, {"id": key_id}, as_="user_a")  # not an admin
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await as_key(api.http, secret)).status_code == 200  # still valid


async def test_agency_key_revokes_a_key_of_its_sub_account(api: Api) -> None:
    key_id, secret = await create_key(api, "agency minted", as_="agency_key", sub_account=api.seed.sub_a)
    payload = (await api.data(REVOKE, {"id": key_id}, as_="agency_key"))["revokeApiKey"]
    assert payload["userErrors"] == [] and payload["apiKey"]["scope"] == "SUB_ACCOUNT"
    assert (await as_key(api.http, secret)).status_code == 401
