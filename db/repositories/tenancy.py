"""Sub-account, user and API-key reads.

Every function takes the sub-account (or, for agency-level callers, the agency) it is
scoped to, except ``api_key_by_hash``: that lookup is what *establishes* the scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import ApiKey, SubAccount, User

users_t = User.__table__
sub_accounts_t = SubAccount.__table__
api_keys_t = ApiKey.__table__

_USER_COLUMNS = [users_t.c[n] for n in ("id", "sub_account_id", "email", "name", "role", "created_at")]
_SUB_ACCOUNT_COLUMNS = [
    sub_accounts_t.c[n] for n in ("id", "agency_id", "name", "labs_two_way_sync", "bcc_sync_address", "created_at")
]
_API_KEY_COLUMNS = [
    api_keys_t.c[n] for n in ("id", "name", "prefix", "sub_account_id", "agency_id", "revoked_at", "created_at")
]


async def user_in_sub_account(
    conn: AsyncConnection, sub_account_id: uuid.UUID, user_id: uuid.UUID
) -> Row[Any] | None:
    stmt = select(*_USER_COLUMNS).where(users_t.c.sub_account_id == sub_account_id, users_t.c.id == user_id)
    return (await conn.execute(stmt)).first()


async def users_by_ids(conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[Row[Any]]:
    if not ids:
        return []
    stmt = select(*_USER_COLUMNS).where(users_t.c.sub_account_id == sub_account_id, users_t.c.id.in_(list(ids)))
    return list((await conn.execute(stmt)).all())


async def sub_account(conn: AsyncConnection, sub_account_id: uuid.UUID) -> Row[Any] | None:
    """The caller's own sub-account (the id comes from its verified credentials)."""
    stmt = select(*_SUB_ACCOUNT_COLUMNS).where(sub_accounts_t.c.id == sub_account_id)
    return (await conn.execute(stmt)).first()


async def sub_account_in_agency(
    conn: AsyncConnection, agency_id: str, sub_account_id: uuid.UUID
) -> Row[Any] | None:
    """For agency-level callers: a sub-account, only if it belongs to their agency."""
    stmt = select(*_SUB_ACCOUNT_COLUMNS).where(
        sub_accounts_t.c.agency_id == agency_id, sub_accounts_t.c.id == sub_account_id
    )
    return (await conn.execute(stmt)).first()


async def api_key_by_hash(conn: AsyncConnection, key_hash: str) -> Row[Any] | None:
    """An unrevoked key by the SHA-256 of its secret."""
    stmt = select(*_API_KEY_COLUMNS).where(api_keys_t.c.key_hash == key_hash, api_keys_t.c.revoked_at.is_(None))
    return (await conn.execute(stmt)).first()
