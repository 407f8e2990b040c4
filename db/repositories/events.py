"""The event log (``db.models.events``): append in the change's transaction, read by cursor.

Every read is scoped to one sub-account, whose events are numbered 1, 2, 3, ... with no
holes (see the model's docstring for why a reader never sees a later event before an
earlier one). ``append`` takes the counter last in a transaction's life, so the row
lock that orders commits is held for as short a time as possible.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import EventCounter, EventRecord

events_t = EventRecord.__table__
counters_t = EventCounter.__table__

COLUMNS = [events_t.c[n] for n in ("seq", "type", "thread_id", "message_id", "connection_id", "user_id", "status",
                                   "occurred_at")]


async def append(conn: AsyncConnection, sub_account_id: uuid.UUID, rows: Sequence[dict[str, Any]]) -> int:
    """Write ``rows`` (event columns without ``seq``) as the sub-account's next events and
    return the last ``seq`` given; the rows get ``seq`` set in place, in order."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(counters_t).values(sub_account_id=sub_account_id, last_seq=len(rows), purged_through=0)
    upsert = upsert.on_conflict_do_update(
        index_elements=[counters_t.c.sub_account_id],
        set_={"last_seq": counters_t.c.last_seq + len(rows)},
    ).returning(counters_t.c.last_seq)
    last = int((await conn.execute(upsert)).scalar_one())
    for offset, row in enumerate(rows):
        row["seq"] = last - len(rows) + 1 + offset
        row["sub_account_id"] = sub_account_id
    await conn.execute(insert(events_t), list(rows))
    return last


async def heads(conn: AsyncConnection, sub_account_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
    """(last seq, purged through) per sub-account; (0, 0) for one that never had an event."""
    ids = list(sub_account_ids)
    out = dict.fromkeys(ids, (0, 0))
    if ids:
        c = counters_t.c
        rows = await conn.execute(select(c.sub_account_id, c.last_seq, c.purged_through)
                                  .where(c.sub_account_id.in_(ids)))
        for sub_id, last_seq, purged in rows:
            out[sub_id] = (int(last_seq), int(purged))
    return out


async def read_after(
    conn: AsyncConnection, sub_account_id: uuid.UUID, after: int, *, through: int | None = None, limit: int = 500
) -> Sequence[Row[Any]]:
    """The sub-account's events with ``after < seq <= through``, oldest first, at most ``limit``."""
    e = events_t.c
    query = select(*COLUMNS).where(e.sub_account_id == sub_account_id, e.seq > after)
    if through is not None:
        query = query.where(e.seq <= through)
    return (await conn.execute(query.order_by(e.seq).limit(limit))).all()


async def expired_ranges(conn: AsyncConnection, cutoff: datetime, *, limit: int = 500) -> list[tuple[uuid.UUID, int]]:
    """(sub-account, last seq to remove) for sub-accounts with events older than ``cutoff``,
    in sub-account order (the one lock order every writer of counters follows)."""
    e = events_t.c
    rows = await conn.execute(select(e.sub_account_id, func.max(e.seq)).where(e.occurred_at < cutoff)
                              .group_by(e.sub_account_id).order_by(e.sub_account_id).limit(limit))
    return [(sub_id, int(through)) for sub_id, through in rows]


async def mark_purged(conn: AsyncConnection, sub_account_id: uuid.UUID, through: int) -> None:
    """Say the log is cut through ``through`` before cutting it: a reader that sees fewer rows
    than it expects can then tell a purge from a bug (and answer "missed")."""
    c = counters_t.c
    await conn.execute(update(counters_t).where(c.sub_account_id == sub_account_id, c.purged_through < through)
                       .values(purged_through=through))


async def delete_oldest(conn: AsyncConnection, sub_account_id: uuid.UUID, through: int, *, batch: int = 5000) -> int:
    """Remove at most ``batch`` of the sub-account's oldest events up to ``through``."""
    e = events_t.c
    lowest = (await conn.execute(select(func.min(e.seq)).where(e.sub_account_id == sub_account_id,
                                                                 e.seq <= through))).scalar()
    if lowest is None:
        return 0
    result = await conn.execute(delete(events_t).where(
        e.sub_account_id == sub_account_id, e.seq >= lowest, e.seq <= min(through, int(lowest) + batch - 1)))
    return result.rowcount or 0
