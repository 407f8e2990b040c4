"""User JWTs and partner API keys: good credentials act, bad ones get a 401 and no data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt

from api.auth import mint_dev_token
from tests.integration.api.conftest import Api

VIEWER = "{ viewer { kind role agencyId user { email } subAccount { name } } }"


def _token(api: Api, **claims: object) -> str:
    base: dict[str, object] = {
        "sub": str(api.seed.user_a),
        "sub_account_id": str(api.seed.sub_a),
        "role": "user",
        "exp": datetime.now(UTC) + timedelta(minutes=5),
    }
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, api.settings.jwt_key.get_secret_value(), "HS256")


async def _assert_401(response: object) -> None:
    assert response.status_code == 401, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Bearer" in response.headers["www-authenticate"]  # type: ignore[attr-defined]


async def test_user_token(api: Api) -> None:
    data = await api.data(VIEWER, as_="user_a")
    assert data["viewer"] == {
        "kind": "USER",
        "role": "USER",
        "agencyId": None,
        "user": {"email": "alice@acme.test"},
        "subAccount": {"name": "Acme Plumbing"},
    }


async def test_expired_token_is_401(api: Api) -> None:
    token = _token(api, exp=datetime.now(UTC) - timedelta(hours=1))
    await _assert_401(await api.post(VIEWER, auth=f"Bearer {token}"))


async def test_token_signed_with_another_key_is_401(api: Api) -> None:
    token = jwt.encode(
        {"sub": str(api.seed.user_a), "sub_account_id": str(api.seed.sub_a), "role": "user",
         "exp": datetime.now(UTC) + timedelta(minutes=5)},
        "some-other-key-0123456789-0123456789",
        "HS256",
    )
    await _assert_401(await api.post(VIEWER, auth=f"Bearer {token}"))


async def test_token_with_none_algorithm_is_401(api: Api) -> None:
    token = jwt.encode(
        {"sub": str(api.seed.user_a), "sub_account_id": str(api.seed.sub_a), "role": "admin",
         "exp": datetime.now(UTC) + timedelta(minutes=5)},
        None,
        "none",
    )
    await _assert_401(await api.post(VIEWER, auth=f"Bearer {token}"))


async def test_token_missing_claims_is_401(api: Api) -> None:
    await _assert_401(await api.post(VIEWER, auth=f"Bearer {_token(api, sub_account_id=None)}"))
    await _assert_401(await api.post(VIEWER, auth=f"Bearer {_token(api, exp=None)}"))


async def test_token_with_unknown_role_is_401(api: Api) -> None:
    await _assert_401(await api.post(VIEWER, auth=f"Bearer {_token(api, role='superuser')}"))


async def test_user_must_exist_in_the_claimed_sub_account(api: Api) -> None:
    # A real user, but claiming the other tenant's sub-account.
    token = mint_dev_token(api.settings, api.seed.user_a, api.seed.sub_b, "admin")
    await _assert_401(await api.post(VIEWER, auth=f"Bearer {token}"))
    token = mint_dev_token(api.settings, uuid.uuid4(), api.seed.sub_a, "admin")
    await _assert_401(await api.post(VIEWER, auth=f"Bearer {token}"))


async def test_garbage_authorization_is_401(api: Api) -> None:
    await _assert_401(await api.post(VIEWER, auth="Bearer not-a-jwt"))
    await _assert_401(await api.post(VIEWER, auth="Basic dXNlcjpwYXNz"))
    await _assert_401(await api.post(VIEWER, auth="Bearer"))


async def test_no_credentials_sees_no_data(api: Api) -> None:
    response = await api.post("{ viewer { kind } threads { edges { cursor } } contacts { edges { cursor } } }")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None or body["data"].get("threads") is None
    codes = {e["extensions"]["code"] for e in body["errors"]}
    assert codes == {"UNAUTHENTICATED"}


async def test_sub_account_api_key_in_authorization_header(api: Api) -> None:
    response = await api.post(VIEWER, auth=f"ApiKey {api.seed.sub_a_key}")
    assert response.status_code == 200
    assert response.json()["data"]["viewer"] == {
        "kind": "SUB_ACCOUNT_KEY",
        "role": "ADMIN",
        "agencyId": None,
        "user": None,
        "subAccount": {"name": "Acme Plumbing"},
    }


async def test_api_key_in_x_api_key_header(api: Api) -> None:
    response = await api.post(VIEWER, headers={"X-Api-Key": api.seed.agency_key})
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["kind"] == "AGENCY_KEY"
    assert response.json()["data"]["viewer"]["agencyId"] == "agency-1"


async def test_unknown_api_key_is_401(api: Api) -> None:
    await _assert_401(await api.post(VIEWER, auth="ApiKey esk_not-a-real-key"))
    await _assert_401(await api.post(VIEWER, headers={"X-Api-Key": api.seed.sub_a_key + "x"}))


async def test_api_keys_are_stored_hashed(api: Api) -> None:
    from sqlalchemy import select

    from db.models import ApiKey

    async with api.rt.sessions() as session:
        stored = (await session.scalars(select(ApiKey.key_hash))).all()
    assert api.seed.sub_a_key not in stored
    assert all(len(h) == 64 for h in stored)


async def test_agency_key_cannot_read_sub_account_data(api: Api) -> None:
    body = await api.gql("{ threads { edges { cursor } } }", as_="agency_key")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
