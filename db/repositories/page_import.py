"""Set-at-a-time reads and writes for importing one page of mailbox changes.

Core statements on plain values: one query per kind of lookup for a whole page, bulk
inserts, and one counter update per touched thread. Importing message by message
through the ORM cost 8-10 round trips and an identity-map synchronisation per message,
which made the database the bottleneck of a mailbox import (DESIGN.md section 5).
Every lookup is scoped to the mailbox connection (and the sub-account) it is given.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import Attachment, Contact, Message, SyncSkip, Thread

messages_t: Table = Message.__table__
threads_t: Table = Thread.__table__
contacts_t: Table = Contact.__table__
skips_t: Table = SyncSkip.__table__
attachments_t: Table = Attachment.__table__

# Bound parameters per IN list: far below SQLite's and asyncpg's limits even for
# pages of unusual size; a normal page needs a single chunk.
_CHUNK = 500

# What the importer needs to know about a stored message of the mailbox.
_MESSAGE_COLUMNS = [
    messages_t.c[n]
    for n in ("id", "sub_account_id", "thread_id", "provider_message_id", "message_id_header", "is_read",
              "deleted_in_mailbox", "status", "read_writeback_pending")
]


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(dict.fromkeys(v for v in values if v))
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


async def messages_by_provider_ids(
    db: AsyncConnection, connection_id: uuid.UUID, provider_ids: Iterable[str]
) -> list[Row[*tuple[Any, ...]]]:
    m = messages_t
    out: list[Row[*tuple[Any, ...]]] = []
    for chunk in _chunks(provider_ids):
        stmt = select(*_MESSAGE_COLUMNS).where(m.c.connection_id == connection_id, m.c.provider_message_id.in_(chunk))
        out.extend((await db.execute(stmt)).all())
    return out


async def crm_sends_by_headers(
    db: AsyncConnection, sub_account_id: uuid.UUID, connection_id: uuid.UUID, headers: Iterable[str]
) -> list[Row[*tuple[Any, ...]]]:
    """Messages the CRM sent through this mailbox, by Message-ID, with their thread's
    connection and key, oldest first, linked to a provider message or not (the caller
    adopts into the oldest unlinked one and knows the rest were copied already). Only these
    may be matched by Message-ID: their Sent-folder copy is the same message (any other
    Message-ID match may be a stranger's reuse of the id)."""
    m, t = messages_t, threads_t
    out: list[Row[*tuple[Any, ...]]] = []
    for chunk in _chunks(headers):
        stmt = (
            select(*_MESSAGE_COLUMNS, t.c.connection_id.label("thread_connection_id"),
                   t.c.provider_thread_key.label("thread_key"))
            .join(t, t.c.id == m.c.thread_id)
            .where(m.c.sub_account_id == sub_account_id, m.c.connection_id == connection_id,
                   m.c.origin == "crm", m.c.message_id_header.in_(chunk))
            .order_by(m.c.created_at, m.c.id)
        )
        out.extend((await db.execute(stmt)).all())
    return out


async def skipped_provider_ids(db: AsyncConnection, connection_id: uuid.UUID, provider_ids: Iterable[str]) -> set[str]:
    s = skips_t
    out: set[str] = set()
    for chunk in _chunks(provider_ids):
        stmt = select(s.c.provider_message_id).where(s.c.connection_id == connection_id,
                                                     s.c.provider_message_id.in_(chunk))
        out.update((await db.execute(stmt)).scalars())
    return out


async def threads_by_keys(db: AsyncConnection, connection_id: uuid.UUID, keys: Iterable[str]) -> list[Row[*tuple[Any, ...]]]:
    """(id, connection_id, provider_thread_key) of the mailbox's threads with these provider keys."""
    t = threads_t
    out: list[Row[*tuple[Any, ...]]] = []
    for chunk in _chunks(keys):
        stmt = select(t.c.id, t.c.connection_id, t.c.provider_thread_key).where(
            t.c.connection_id == connection_id, t.c.provider_thread_key.in_(chunk)
        )
        out.extend((await db.execute(stmt)).all())
    return out


async def threads_by_message_headers(
    db: AsyncConnection, sub_account_id: uuid.UUID, connection_id: uuid.UUID, headers: Iterable[str]
) -> list[Row[*tuple[Any, ...]]]:
    """(message_id_header, thread id, connection_id, provider_thread_key) for the mailbox's
    messages with these Message-IDs: the threads that replies referring to them join.
    Several messages may share a Message-ID: oldest first, so callers keep the first."""
    m, t = messages_t, threads_t
    out: list[Row[*tuple[Any, ...]]] = []
    for chunk in _chunks(headers):
        stmt = (
            select(m.c.message_id_header, t.c.id, t.c.connection_id, t.c.provider_thread_key)
            .join(t, t.c.id == m.c.thread_id)
            .where(m.c.sub_account_id == sub_account_id, m.c.connection_id == connection_id,
                   m.c.message_id_header.in_(chunk))
            .order_by(m.c.created_at, m.c.id)
        )
        out.extend((await db.execute(stmt)).all())
    return out


async def contact_ids_by_emails(
    db: AsyncConnection, sub_account_id: uuid.UUID, emails: Iterable[str]
) -> dict[str, uuid.UUID]:
    c = contacts_t
    out: dict[str, uuid.UUID] = {}
    for chunk in _chunks(e.strip().lower() for e in emails if e):
        stmt = select(c.c.email_normalized, c.c.id).where(c.c.sub_account_id == sub_account_id,
                                                          c.c.email_normalized.in_(chunk))
        out.update(dict((await db.execute(stmt)).all()))
    return out


# ---- writes


async def _insert(db: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    # executemany: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues").
    if rows:
        await db.execute(insert(table), list(rows))


async def insert_contacts(db: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    await _insert(db, contacts_t, rows)


async def insert_threads(db: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    await _insert(db, threads_t, rows)


async def insert_messages(db: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    await _insert(db, messages_t, rows)


async def insert_attachments(db: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    await _insert(db, attachments_t, rows)


async def insert_skips(db: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    await _insert(db, skips_t, rows)


async def update_messages(
    db: AsyncConnection, sub_account_id: uuid.UUID, changes: Mapping[uuid.UUID, Mapping[str, Any]]
) -> None:
    """Apply per-message column changes; messages with identical changes share a statement
    (a page of deletions or of read flags is one UPDATE)."""
    groups: dict[tuple[tuple[str, Any], ...], list[uuid.UUID]] = {}
    for message_id, values in changes.items():
        if values:
            groups.setdefault(tuple(sorted(values.items())), []).append(message_id)
    for assignments, ids in groups.items():
        for chunk in _chunks(ids):
            await db.execute(update(messages_t)
                             .where(messages_t.c.sub_account_id == sub_account_id, messages_t.c.id.in_(chunk))
                             .values(dict(assignments)))


async def set_thread_keys(db: AsyncConnection, sub_account_id: uuid.UUID, keys: Mapping[uuid.UUID, str]) -> None:
    for thread_id, key in keys.items():
        await db.execute(update(threads_t).where(threads_t.c.sub_account_id == sub_account_id, threads_t.c.id == thread_id)
                         .values(provider_thread_key=key))


@dataclass(frozen=True, slots=True)
class ThreadIncrement:
    """What a page adds to a stored thread. ``last_message_at``/``snippet``: the page's
    newest dated message (the later one on a tie), None when none is dated."""

    thread_id: uuid.UUID
    messages: int
    unread: int
    last_message_at: datetime | None
    snippet: str


async def add_to_threads(db: AsyncConnection, sub_account_id: uuid.UUID, increments: Sequence[ThreadIncrement]) -> None:
    """One UPDATE per thread (executemany): counters add up; last_message_at/snippet move
    only forward, as if the page's messages had been added one by one."""
    t = threads_t
    counters = {
        "message_count": t.c.message_count + bindparam("p_messages"),
        "unread_count": t.c.unread_count + bindparam("p_unread"),
    }
    at = bindparam("p_at", type_=t.c.last_message_at.type)
    newer = or_(t.c.last_message_at.is_(None), t.c.last_message_at <= at)
    dated = {**counters, "last_message_at": case((newer, at), else_=t.c.last_message_at),
             "snippet": case((newer, bindparam("p_snippet", type_=t.c.snippet.type)), else_=t.c.snippet)}
    with_date = [{"p_id": i.thread_id, "p_messages": i.messages, "p_unread": i.unread, "p_at": i.last_message_at,
                  "p_snippet": i.snippet} for i in increments if i.last_message_at is not None]
    without = [{"p_id": i.thread_id, "p_messages": i.messages, "p_unread": i.unread}
               for i in increments if i.last_message_at is None]
    mine = and_(t.c.sub_account_id == sub_account_id, t.c.id == bindparam("p_id"))
    if with_date:
        await db.execute(update(t).where(mine).values(dated), with_date)
    if without:
        await db.execute(update(t).where(mine).values(counters), without)


async def recount_unread(db: AsyncConnection, sub_account_id: uuid.UUID, thread_ids: Collection[uuid.UUID]) -> None:
    """Unread counts recomputed from the messages (after read-state changes)."""
    m, t = messages_t, threads_t
    unread = (
        select(func.count(m.c.id))
        .where(m.c.thread_id == t.c.id, m.c.is_read.is_(False), m.c.direction == "inbound")
        .correlate(t)
        .scalar_subquery()
    )
    for chunk in _chunks(thread_ids):
        await db.execute(update(t).where(t.c.sub_account_id == sub_account_id, t.c.id.in_(chunk))
                         .values(unread_count=unread))
