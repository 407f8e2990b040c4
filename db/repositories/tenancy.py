"""Sub-accounts, users and API-key lookups: reads, and the writes of tenancy administration.

Every function takes the sub-account (or, for agency-level callers, the agency) it is
scoped to, except ``api_key_by_hash``: that lookup is what *establishes* the scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.models import ApiKey, EmailConnection, SubAccount, User
from db.repositories.writes import flush_row

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


async def is_member(session: AsyncSession, sub_account_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await session.scalar(select(User.id).where(User.id == user_id, User.sub_account_id == sub_account_id))
    return found is not None


async def user_addresses(session: AsyncSession, sub_account_id: uuid.UUID) -> set[str]:
    """Every address that belongs to a user of the sub-account: CRM logins and connected mailboxes."""
    users = await session.scalars(select(User.email_normalized).where(User.sub_account_id == sub_account_id))
    mailboxes = await session.scalars(
        select(EmailConnection.address).where(EmailConnection.sub_account_id == sub_account_id)
    )
    # Lowercased here, not in SQL: SQLite's lower() folds ASCII only ("Ü" stays), and a
    # colleague's address that is not recognised would break the confidentiality rule.
    return set(users) | {address.strip().lower() for address in mailboxes}


async def sub_account_model(session: AsyncSession, sub_account_id: uuid.UUID) -> SubAccount | None:
    return await session.get(SubAccount, sub_account_id)


async def sub_account_exists(session: AsyncSession, sub_account_id: uuid.UUID, *, agency_id: str | None = None) -> bool:
    """``agency_id``: only if the sub-account belongs to that agency (agency-level callers)."""
    stmt = select(SubAccount.id).where(SubAccount.id == sub_account_id)
    if agency_id is not None:
        stmt = stmt.where(SubAccount.agency_id == agency_id)
    return await session.scalar(stmt) is not None


async def user_email_taken(session: AsyncSession, sub_account_id: uuid.UUID, email_normalized: str) -> bool:
    found = await session.scalar(
        select(User.id).where(User.sub_account_id == sub_account_id, User.email_normalized == email_normalized)
    )
    return found is not None


async def add_sub_account(session: AsyncSession, sub_account: SubAccount) -> None:
    await flush_row(session, sub_account)


async def add_user(session: AsyncSession, user: User) -> None:
    """Raises ``AlreadyExists`` when a concurrent insert took the address first."""
    await flush_row(session, user)


async def set_two_way_sync(session: AsyncSession, sub_account_id: uuid.UUID, enabled: bool) -> SubAccount | None:
    """The sub-account with its labs flag set; None when there is no such sub-account."""
    sub_account = await session.get(SubAccount, sub_account_id)
    if sub_account is not None:
        sub_account.labs_two_way_sync = enabled
        await session.flush()
    return sub_account


async def sub_account_named(session: AsyncSession, agency_id: str, name: str) -> SubAccount | None:
    """A sub-account of an agency by its name (the demo seed finds its own again)."""
    return await session.scalar(select(SubAccount).where(SubAccount.agency_id == agency_id, SubAccount.name == name))


async def user_by_email(session: AsyncSession, sub_account_id: uuid.UUID, email_normalized: str) -> User | None:
    return await session.scalar(
        select(User).where(User.sub_account_id == sub_account_id, User.email_normalized == email_normalized)
    )
