"""Untrusted documents: depth, token and alias limits; unexpected errors are masked."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import Api


def nested(depth: int) -> str:
    # thread -> lastMessage -> thread -> lastMessage ... each level adds one to the depth.
    names = ["lastMessage" if i % 2 == 0 else "thread" for i in range(depth)]
    inner = "id"
    for name in reversed(names):
        inner = f"{name} {{ {inner} }}"
    return f'{{ thread(id: "x") {{ {inner} }} }}'


async def test_depth_limit(api: Api) -> None:
    ok = await api.gql(nested(8))
    assert "errors" not in ok, ok
    body = await api.gql(nested(20))
    assert "data" not in body
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_alias_limit(api: Api) -> None:
    aliases = " ".join(f"a{i}: viewer {{ kind }}" for i in range(31))
    body = await api.gql(f"{{ {aliases} }}")
    assert "data" not in body
    assert "aliases found" in body["errors"][0]["message"]
    aliases = " ".join(f"a{i}: viewer {{ kind }}" for i in range(30))
    assert "errors" not in await api.gql(f"{{ {aliases} }}")


async def test_token_limit(api: Api) -> None:
    fields = " ".join(["__typename"] * 2100)
    body = await api.gql(f"{{ {fields} }}")
    assert "data" not in body
    assert "more than 2000 tokens" in body["errors"][0]["message"]


async def test_unexpected_errors_are_masked(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from db.repositories import contacts

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("connection string postgres://secret@db leaked")

    monkeypatch.setattr(contacts, "list_contacts", broken)
    body = await api.gql("{ viewer { kind } contacts { edges { cursor } } }")
    assert body["errors"][0]["message"] == "internal error"
    assert "secret" not in str(body)
    assert body["errors"][0]["path"] == ["contacts"]
