"""The event log's retention: events older than ``event_retention_hours`` are removed.

A subscription resuming from a cursor inside the removed range is told
``EVENTS_MISSED`` (the counter remembers how far the log was cut), never silently
given a partial replay.
"""

from __future__ import annotations

from datetime import timedelta

from db.base import utcnow
from db.repositories import events as event_log
from sync_engine.runtime import Runtime


async def purge_expired_events(rt: Runtime) -> int:
    cutoff = utcnow() - timedelta(hours=rt.settings.event_retention_hours)
    removed = 0
    while True:
        async with rt.engine.begin() as conn:
            batch = await event_log.purge_before(conn, cutoff)
        removed += batch
        if batch == 0:
            return removed
