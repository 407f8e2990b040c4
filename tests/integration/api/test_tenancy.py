"""Sub-account isolation and roles: another tenant's ids answer "not found"."""

from __future__ import annotations

import json

from api.ids import to_global_id
from tests.integration.api.conftest import Api


def gid(kind: str, id_: object) -> str:
    return to_global_id(kind, id_)  # type: ignore[arg-type]


NODE = "query ($id: ID!) { node(id: $id) { id __typename } }"


async def test_other_tenants_thread_is_null(api: Api) -> None:
    data = await api.data("query ($id: ID!) { thread(id: $id) { id subject } }", {"id": gid("Thread", api.seed.thread_b)})
    assert data == {"thread": None}


async def test_node_resolves_own_objects(api: Api) -> None:
    for kind, id_ in [
        ("Thread", api.seed.threads_a[0]),
        ("Contact", api.seed.contacts_a[0]),
        ("User", api.seed.user_a2),
        ("EmailConnection", api.seed.connection_a),
        ("SyncSkip", api.seed.skip_a),
        ("SubAccount", api.seed.sub_a),
    ]:
        data = await api.data(NODE, {"id": gid(kind, id_)})
        assert data["node"] == {"id": gid(kind, id_), "__typename": kind}


async def test_node_of_another_tenant_is_null(api: Api) -> None:
    for kind, id_ in [
        ("Thread", api.seed.thread_b),
        ("Message", api.seed.message_b),
        ("Contact", api.seed.contact_b),
        ("User", api.seed.user_b),
        ("EmailConnection", api.seed.connection_b),
        ("SubAccount", api.seed.sub_b),
    ]:
        data = await api.data(NODE, {"id": gid(kind, id_)}, as_="admin_a")
        assert data == {"node": None}, kind


async def test_lists_never_show_another_tenant(api: Api) -> None:
    query = """{ threads { edges { node { subject contact { email } } } }
                 contacts { edges { node { email } } } syncSkips { edges { node { subject } } }
                 emailConnections { address } }"""
    text = json.dumps(await api.data(query, as_="admin_a"))
    assert "Rival" not in text and "rival.test" not in text and "carol@other.test" not in text


async def test_mutations_with_another_tenants_ids_answer_not_found(api: Api) -> None:
    update = """mutation ($id: ID!) { updateContact(input: {id: $id, name: "pwned"}) {
        contact { id } userErrors { field message code } } }"""
    data = await api.data(update, {"id": gid("Contact", api.seed.contact_b)}, as_="admin_a")
    assert data["updateContact"]["contact"] is None
    assert data["updateContact"]["userErrors"] == [{"field": "id", "message": "contact not found", "code": "NOT_FOUND"}]
    delete = "mutation ($id: ID!) { deleteContact(input: {id: $id}) { deletedContactId userErrors { code } } }"
    data = await api.data(delete, {"id": gid("Contact", api.seed.contact_b)}, as_="admin_a")
    assert data["deleteContact"] == {"deletedContactId": None, "userErrors": [{"code": "NOT_FOUND"}]}
    # Still there, untouched, for its own tenant.
    mine = await api.data(NODE.replace("__typename", "... on Contact { name }"), {"id": gid("Contact", api.seed.contact_b)}, as_="user_b")
    assert mine["node"]["name"] == "Rival"


async def test_email_connections_are_for_admins(api: Api) -> None:
    body = await api.gql("{ emailConnections { address } }", as_="user_a")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    data = await api.data("{ emailConnections { address user { email } } }", as_="admin_a")
    assert sorted(c["address"] for c in data["emailConnections"]) == ["alice@acme.test", "bob@acme.test"]
    data = await api.data("{ emailConnections { address } }", as_="sub_a_key")
    assert len(data["emailConnections"]) == 2


async def test_sync_skips_are_for_the_owner_and_admins(api: Api) -> None:
    query = "{ syncSkips { edges { node { id reason detail subject emailConnection { address } } } } }"
    mine = await api.data(query, as_="user_a")
    assert [e["node"]["subject"] for e in mine["syncSkips"]["edges"]] == ["Big video"]
    assert mine["syncSkips"]["edges"][0]["node"]["reason"] == "attachment_too_large"
    assert mine["syncSkips"]["edges"][0]["node"]["emailConnection"] == {"address": "alice@acme.test"}
    everyone = await api.data(query, as_="admin_a")
    assert sorted(e["node"]["subject"] for e in everyone["syncSkips"]["edges"]) == ["Big video", "Bob's exe"]
    # Another user's skip is not reachable by id either, nor their connection.
    data = await api.data(NODE, {"id": gid("SyncSkip", api.seed.skip_a2)}, as_="user_a")
    assert data == {"node": None}
    data = await api.data(NODE, {"id": gid("EmailConnection", api.seed.connection_a2)}, as_="user_a")
    assert data == {"node": None}


async def test_role_user_cannot_set_labs_flags(api: Api) -> None:
    body = await api.gql("mutation { setLabsFeature(input: {twoWaySync: true}) { subAccount { id } } }", as_="user_a")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
