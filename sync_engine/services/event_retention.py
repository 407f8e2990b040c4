"""The event log's retention: events older than ``retention`` are removed.

A subscription resuming from a cursor inside the removed range is told
``EVENTS_MISSED`` (the counter remembers how far the log was cut), never silently
given a partial replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from db.repositories import events as event_log
from sync_engine.services.collaborators import Clock


@dataclass(frozen=True)
class EventRetentionService:
    engine: AsyncEngine
    clock: Clock
    retention: timedelta

    async def purge_expired_events(self) -> int:
        """Remove expired events, in short transactions: one sub-account's counter at a time,
        and deletes in bounded chunks, so writers of live events never wait long behind it."""
        cutoff = self.clock() - self.retention
        removed = 0
        while True:
            async with self.engine.connect() as conn:
                ranges = await event_log.expired_ranges(conn, cutoff)
            if not ranges:
                return removed
            for sub_account_id, through in ranges:
                async with self.engine.begin() as conn:
                    await event_log.mark_purged(conn, sub_account_id, through)
                while True:
                    async with self.engine.begin() as conn:
                        batch = await event_log.delete_oldest(conn, sub_account_id, through)
                    if not batch:
                        break
                    removed += batch
