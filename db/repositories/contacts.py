"""Contacts of a sub-account: reads and writes, each scoped to that sub-account."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.models import Contact
from db.repositories.paging import Page, like_pattern, split_page
from db.repositories.writes import flush_row

contacts_t = Contact.__table__
_COLUMNS = [contacts_t.c[name] for name in ("id", "email", "email_normalized", "name", "source", "created_at")]


async def list_contacts(
    conn: AsyncConnection,
    sub_account_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[str, uuid.UUID] | None = None,
    search: str | None = None,
) -> Page[Row[Any]]:
    """Alphabetical by normalized email; ``search`` matches email or name, case-insensitively."""
    c = contacts_t
    stmt = select(*_COLUMNS).where(c.c.sub_account_id == sub_account_id)
    if search:
        pattern = like_pattern(search.strip().lower())
        stmt = stmt.where(
            or_(
                c.c.email_normalized.like(pattern, escape="\\"),
                func.lower(c.c.name).like(pattern, escape="\\"),
            )
        )
    if after is not None:
        stmt = stmt.where(tuple_(c.c.email_normalized, c.c.id) > tuple_(after[0], after[1]))
    stmt = stmt.order_by(c.c.email_normalized, c.c.id).limit(limit + 1)
    return split_page((await conn.execute(stmt)).all(), limit)


async def contacts_by_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    if not ids:
        return []
    stmt = select(*_COLUMNS).where(contacts_t.c.sub_account_id == sub_account_id, contacts_t.c.id.in_(list(ids)))
    return list((await conn.execute(stmt)).all())


async def contacts_by_emails(
    session: AsyncSession, sub_account_id: uuid.UUID, emails: Iterable[str]
) -> dict[str, Contact]:
    wanted = {e.strip().lower() for e in emails if e}
    if not wanted:
        return {}
    rows = await session.scalars(
        select(Contact).where(Contact.sub_account_id == sub_account_id, Contact.email_normalized.in_(wanted))
    )
    return {c.email_normalized: c for c in rows}


async def contact_in_sub_account(session: AsyncSession, sub_account_id: uuid.UUID,
                                 contact_id: uuid.UUID) -> Contact | None:
    return await session.scalar(select(Contact).where(Contact.sub_account_id == sub_account_id, Contact.id == contact_id))


async def email_taken(session: AsyncSession, sub_account_id: uuid.UUID, email_normalized: str) -> bool:
    found = await session.scalar(
        select(Contact.id).where(Contact.sub_account_id == sub_account_id, Contact.email_normalized == email_normalized)
    )
    return found is not None


async def add_contact(session: AsyncSession, contact: Contact) -> None:
    """Raises ``AlreadyExists`` when a concurrent insert took the address first."""
    await flush_row(session, contact)


async def save_contact(session: AsyncSession, contact: Contact) -> None:
    """Write a changed contact now; ``AlreadyExists`` when its new address collided."""
    await flush_row(session, contact)


async def delete_contact(session: AsyncSession, contact: Contact) -> None:
    """Threads keep their messages; their contact link is cleared by the foreign key."""
    await session.delete(contact)
    await session.flush()
