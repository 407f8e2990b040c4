"""Agency administration (API keys) and the labs flag."""

from __future__ import annotations

import uuid

from api.ids import to_global_id
from tests.integration.api.conftest import Api

CREATE_SUB = """mutation ($input: CreateSubAccountInput!) { createSubAccount(input: $input) {
  subAccount { id name agencyId bccSyncAddress labsTwoWaySync } userErrors { field message code } } }"""
CREATE_USER = """mutation ($input: CreateUserInput!) { createUser(input: $input) {
  user { id email name role } userErrors { field message code } } }"""
CREATE_KEY = """mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  apiKey { id name prefix subAccountId agencyId } key userErrors { field code } } }"""
LABS = """mutation ($on: Boolean!) { setLabsFeature(input: {twoWaySync: $on}) {
  subAccount { labsTwoWaySync } userErrors { code } } }"""


async def test_labs_flag(api: Api) -> None:
    data = await api.data(LABS, {"on": True}, as_="admin_a")
    assert data["setLabsFeature"] == {"subAccount": {"labsTwoWaySync": True}, "userErrors": []}
    viewer = await api.data("{ viewer { subAccount { labsTwoWaySync } } }", as_="user_a")
    assert viewer["viewer"]["subAccount"]["labsTwoWaySync"] is True
    data = await api.data(LABS, {"on": False}, as_="sub_a_key")
    assert data["setLabsFeature"]["subAccount"]["labsTwoWaySync"] is False
    # The other tenant's flag did not move.
    other = await api.data("{ viewer { subAccount { labsTwoWaySync } } }", as_="user_b")
    assert other["viewer"]["subAccount"]["labsTwoWaySync"] is False


async def test_agency_key_creates_sub_account_and_user(api: Api) -> None:
    data = await api.data(CREATE_SUB, {"input": {"name": "New Biz"}}, as_="agency_key")
    sub = data["createSubAccount"]["subAccount"]
    assert data["createSubAccount"]["userErrors"] == []
    assert sub["name"] == "New Biz" and sub["agencyId"] == "agency-1" and sub["labsTwoWaySync"] is False
    assert "@" in sub["bccSyncAddress"] and "\n" not in sub["bccSyncAddress"]

    email = f"new-{uuid.uuid4().hex[:6]}@biz.test"
    data = await api.data(
        CREATE_USER, {"input": {"subAccountId": sub["id"], "email": email, "name": "Nina", "role": "ADMIN"}}, as_="agency_key"
    )
    assert data["createUser"]["userErrors"] == []
    assert data["createUser"]["user"]["email"] == email
    assert data["createUser"]["user"]["role"] == "ADMIN"
    again = await api.data(
        CREATE_USER, {"input": {"subAccountId": sub["id"], "email": email.upper(), "role": "USER"}}, as_="agency_key"
    )
    assert again["createUser"]["userErrors"][0]["code"] == "DUPLICATE_EMAIL"


async def test_agency_key_cannot_touch_another_agency(api: Api) -> None:
    data = await api.data(CREATE_SUB, {"input": {"name": "Sneaky", "agencyId": "agency-2"}}, as_="agency_key")
    assert data["createSubAccount"]["userErrors"][0]["code"] == "FORBIDDEN"
    data = await api.data(
        CREATE_USER,
        {"input": {"subAccountId": to_global_id("SubAccount", api.seed.sub_b), "email": "x@y.test", "role": "ADMIN"}},
        as_="agency_key",
    )
    assert data["createUser"]["userErrors"][0]["code"] == "NOT_FOUND"


async def test_admin_mutations_are_refused_to_user_tokens_and_sub_account_keys(api: Api) -> None:
    for who in ("user_a", "admin_a", "sub_a_key"):
        body = await api.gql(CREATE_SUB, {"input": {"name": "Nope"}}, as_=who)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", who
        body = await api.gql(
            CREATE_USER,
            {"input": {"subAccountId": to_global_id("SubAccount", api.seed.sub_a), "email": "x@y.test", "role": "ADMIN"}},
            as_=who,
        )
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", who


async def test_create_api_key_returns_a_working_key_once(api: Api) -> None:
    data = await api.data(
        CREATE_KEY, {"input": {"name": "crm sync", "subAccountId": to_global_id("SubAccount", api.seed.sub_a)}}, as_="agency_key"
    )
    payload = data["createApiKey"]
    assert payload["userErrors"] == []
    key = payload["key"]
    assert key.startswith(payload["apiKey"]["prefix"])
    assert payload["apiKey"]["subAccountId"] == to_global_id("SubAccount", api.seed.sub_a)
    response = await api.post("{ viewer { kind subAccount { name } } }", auth=f"ApiKey {key}")
    assert response.json()["data"]["viewer"] == {"kind": "SUB_ACCOUNT_KEY", "subAccount": {"name": "Acme Plumbing"}}


async def test_create_api_key_rules(api: Api) -> None:
    # A sub-account admin mints keys for their own sub-account only.
    data = await api.data(CREATE_KEY, {"input": {"name": "mine"}}, as_="admin_a")
    assert data["createApiKey"]["apiKey"]["subAccountId"] == to_global_id("SubAccount", api.seed.sub_a)
    data = await api.data(
        CREATE_KEY, {"input": {"name": "theirs", "subAccountId": to_global_id("SubAccount", api.seed.sub_b)}}, as_="admin_a"
    )
    assert data["createApiKey"]["userErrors"][0]["code"] == "NOT_FOUND"
    body = await api.gql(CREATE_KEY, {"input": {"name": "nope"}}, as_="user_a")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # An agency key for a sub-account of another agency: not found.
    data = await api.data(
        CREATE_KEY, {"input": {"name": "x", "subAccountId": to_global_id("SubAccount", api.seed.sub_b)}}, as_="agency_key"
    )
    assert data["createApiKey"]["userErrors"][0]["code"] == "NOT_FOUND"
    # Without a sub-account, an agency key mints another agency key.
    data = await api.data(CREATE_KEY, {"input": {"name": "agency too"}}, as_="agency_key")
    assert data["createApiKey"]["apiKey"]["agencyId"] == "agency-1"
