import pytest

from api.graphql_http import APPLICATION_JSON, GRAPHQL_RESPONSE_JSON, negotiate_media_type


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, APPLICATION_JSON),
        ("", APPLICATION_JSON),
        ("application/json", APPLICATION_JSON),
        ("*/*", APPLICATION_JSON),
        ("application/*", APPLICATION_JSON),
        (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
        (f"application/json, {GRAPHQL_RESPONSE_JSON}", GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON};charset=utf-8, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        (f"application/json, {GRAPHQL_RESPONSE_JSON};q=0.5", APPLICATION_JSON),
        (f"{GRAPHQL_RESPONSE_JSON};q=0, application/json", APPLICATION_JSON),
        ("text/html", None),
        ("application/xml, text/plain", None),
        ("application/json;q=0", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate_media_type(accept) == expected
