"""The viewer's mailbox connection: status and counts, never secrets."""

from __future__ import annotations

import json

from tests.integration.api.conftest import PLANTED_ACCESS_TOKEN, PLANTED_CLIENT_STATE, PLANTED_REFRESH_TOKEN, Api

QUERY = """{ emailConnection { id provider address displayName status statusDetail isCurrent lastSyncAt
  messagesSynced skippedCount confidentialSkippedCount connectedAt disconnectedAt user { email } } }"""


async def test_email_connection_fields(api: Api) -> None:
    data = await api.data(QUERY, as_="user_a")
    connection = data["emailConnection"]
    assert connection["provider"] == "OUTLOOK"
    assert connection["address"] == "alice@acme.test"
    assert connection["status"] == "ACTIVE"
    assert connection["isCurrent"] is True
    assert connection["messagesSynced"] == 42
    assert connection["skippedCount"] == 1
    assert connection["confidentialSkippedCount"] == 3
    assert connection["lastSyncAt"].startswith("2026-03-01T12:00:00")
    assert connection["user"] == {"email": "alice@acme.test"}


async def test_no_connection_is_null(api: Api) -> None:
    assert (await api.data(QUERY, as_="admin_a")) == {"emailConnection": None}
    assert (await api.data(QUERY, as_="sub_a_key")) == {"emailConnection": None}


async def test_no_token_material_anywhere(api: Api, introspection: None) -> None:
    # Introspect every field of EmailConnection and ask for all of the scalar ones.
    fields = await api.data('{ __type(name: "EmailConnection") { fields { name type { kind ofType { kind } } } } }')
    scalars = [
        f["name"] for f in fields["__type"]["fields"]
        if f["type"]["kind"] in ("SCALAR", "ENUM") or (f["type"]["ofType"] or {}).get("kind") in ("SCALAR", "ENUM")
    ]
    assert not {"token", "tokens", "accessToken", "refreshToken", "cursor", "clientState", "watchId"} & set(scalars)
    own_view = await api.data("{{ emailConnection {{ {} }} }}".format(" ".join(scalars)), as_="user_a")
    admin_view = await api.data("{{ emailConnections {{ {} }} }}".format(" ".join(scalars)), as_="admin_a")
    text = json.dumps([own_view, admin_view])
    for secret in (api.seed.token_ciphertext, PLANTED_ACCESS_TOKEN, PLANTED_REFRESH_TOKEN, PLANTED_CLIENT_STATE,
                   "planted-cursor", "planted-watch-id"):
        assert secret not in text
    assert "alice@acme.test" in text
