"""Partner API keys: listing and revoking them, scoped to who asks.

A scope is a sub-account (its own keys) or an agency (its agency-level keys and the
keys of its sub-accounts, which an agency key administers). ``valid_api_key_ids`` is
the one unscoped read: it only tells which of the ids it is given still authenticate.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.base import utcnow
from db.models import ApiKey, SubAccount
from db.repositories.paging import Page, split_page
from db.repositories.writes import flush_row

api_keys_t = ApiKey.__table__
sub_accounts_t = SubAccount.__table__

# Never the hash: nothing that reads keys for display needs it.
_COLUMNS = [api_keys_t.c[n] for n in ("id", "name", "prefix", "sub_account_id", "agency_id", "revoked_at", "created_at")]


@dataclass(frozen=True, slots=True)
class KeyScope:
    """Exactly one of the two is set."""

    sub_account_id: uuid.UUID | None = None
    agency_id: str | None = None

    def condition(self) -> ColumnElement[bool]:
        k = api_keys_t.c
        if self.sub_account_id is not None:
            return k.sub_account_id == self.sub_account_id
        if self.agency_id is None:
            raise ValueError("a key scope needs a sub-account or an agency")
        agency_sub_accounts = select(sub_accounts_t.c.id).where(sub_accounts_t.c.agency_id == self.agency_id)
        return or_(k.agency_id == self.agency_id, k.sub_account_id.in_(agency_sub_accounts))


async def list_api_keys(
    conn: AsyncConnection, scope: KeyScope, *, limit: int, after: tuple[datetime, uuid.UUID] | None = None
) -> Page[Row[Any]]:
    """Newest first, revoked keys included."""
    k = api_keys_t.c
    stmt = select(*_COLUMNS).where(scope.condition())
    if after is not None:
        stmt = stmt.where(tuple_(k.created_at, k.id) < tuple_(after[0], after[1]))
    stmt = stmt.order_by(k.created_at.desc(), k.id.desc()).limit(limit + 1)
    return split_page((await conn.execute(stmt)).all(), limit)


async def revoke_api_key(conn: AsyncConnection, scope: KeyScope, key_id: uuid.UUID) -> Row[Any] | None:
    """Revoke a key of ``scope`` (a key revoked already keeps its first revocation time).
    Returns the key, or None when the scope has no such key."""
    k = api_keys_t.c
    await conn.execute(
        update(api_keys_t)
        .where(k.id == key_id, scope.condition(), k.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return (await conn.execute(select(*_COLUMNS).where(k.id == key_id, scope.condition()))).first()


async def add_api_key(session: AsyncSession, row: ApiKey) -> None:
    await flush_row(session, row)


async def valid_api_key_ids(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` that still authenticate (not revoked, not deleted)."""
    if not ids:
        return set()
    k = api_keys_t.c
    rows = await conn.execute(select(k.id).where(k.id.in_(list(ids)), k.revoked_at.is_(None)))
    return {row.id for row in rows}
