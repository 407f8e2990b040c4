"""GraphQL over HTTP: media types, status codes, GET, GraphiQL (the spec's rules)."""

from __future__ import annotations

import json

from tests.integration.api.conftest import Api

GRAPHQL_RESPONSE = "application/graphql-response+json"
VIEWER = "{ viewer { kind role } }"


async def test_healthz(api: Api) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_post_with_application_json(api: Api) -> None:
    response = await api.post(VIEWER, auth=api.auth_header("user_a"), accept="application/json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"viewer": {"kind": "USER", "role": "USER"}}}


async def test_post_with_graphql_response_json(api: Api) -> None:
    response = await api.post(VIEWER, auth=api.auth_header("admin_a"), accept=GRAPHQL_RESPONSE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert response.json()["data"]["viewer"]["role"] == "ADMIN"


async def test_no_accept_header_means_application_json(api: Api) -> None:
    response = await api.post(VIEWER, auth=api.auth_header("user_a"), accept=None)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")


async def test_accept_preference_by_quality(api: Api) -> None:
    response = await api.post(
        VIEWER, auth=api.auth_header("user_a"), accept=f"application/json;q=0.9, {GRAPHQL_RESPONSE}"
    )
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    response = await api.post(VIEWER, auth=api.auth_header("user_a"), accept=f"application/json, {GRAPHQL_RESPONSE};q=0.5")
    assert response.headers["content-type"].startswith("application/json")


async def test_unacceptable_media_type_is_406(api: Api) -> None:
    response = await api.post(VIEWER, auth=api.auth_header("user_a"), accept="application/xml")
    assert response.status_code == 406


async def test_syntax_error_is_400_without_data_for_graphql_response_json(api: Api) -> None:
    response = await api.post("{ viewer { ", auth=api.auth_header("user_a"), accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["message"].startswith("Syntax Error")


async def test_validation_error_is_400_for_graphql_response_json(api: Api) -> None:
    response = await api.post("{ viewer { noSuchField } }", auth=api.auth_header("user_a"), accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert "data" not in response.json()


async def test_validation_error_is_200_for_application_json(api: Api) -> None:
    response = await api.post("{ viewer { noSuchField } }", auth=api.auth_header("user_a"), accept="application/json")
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert "noSuchField" in body["errors"][0]["message"]


async def test_variable_coercion_error_is_a_request_error(api: Api) -> None:
    query = "query ($id: ID!) { thread(id: $id) { id } }"
    response = await api.post(query, {"id": None}, auth=api.auth_header("user_a"), accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert "data" not in response.json()


async def test_field_error_keeps_200_and_data(api: Api) -> None:
    # Not signed in: `threads` fails with a field error; the response still has data.
    response = await api.post("{ viewer { kind } threads { edges { cursor } } }", accept=GRAPHQL_RESPONSE)
    assert response.status_code == 200
    body = response.json()
    assert "data" in body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_get_query(api: Api) -> None:
    response = await api.http.get(
        "/graphql",
        params={"query": "query V { viewer { kind } }", "operationName": "V"},
        headers={"Authorization": api.auth_header("user_a"), "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": {"kind": "USER"}}}


async def test_get_query_with_variables(api: Api) -> None:
    response = await api.http.get(
        "/graphql",
        params={"query": "query ($n: Int) { threads(first: $n) { edges { cursor } } }", "variables": json.dumps({"n": 2})},
        headers={"Authorization": api.auth_header("user_a")},
    )
    assert response.status_code == 200
    assert len(response.json()["data"]["threads"]["edges"]) == 2


async def test_mutation_over_get_is_405(api: Api) -> None:
    response = await api.http.get(
        "/graphql",
        params={"query": 'mutation { createContact(input: {email: "x@y.test"}) { contact { id } } }'},
        headers={"Authorization": api.auth_header("user_a"), "Accept": "application/json"},
    )
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    assert response.json()["errors"][0]["message"]


async def test_unsupported_content_type_is_415(api: Api) -> None:
    response = await api.http.post(
        "/graphql", content="query=%7Bviewer%7Bkind%7D%7D", headers={"Content-Type": "text/plain", "Accept": "application/json"}
    )
    assert response.status_code == 415


async def test_malformed_json_body_is_400(api: Api) -> None:
    response = await api.http.post(
        "/graphql", content="{not json", headers={"Content-Type": "application/json", "Accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert response.json()["errors"]


async def test_missing_query_is_400(api: Api) -> None:
    response = await api.http.post("/graphql", json={"variables": {}}, headers={"Accept": "application/json"})
    assert response.status_code == 400


async def test_other_methods_are_405(api: Api) -> None:
    response = await api.http.put("/graphql", json={"query": VIEWER})
    assert response.status_code == 405


async def test_graphiql_on_get_with_html(api: Api) -> None:
    response = await api.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()
