"""Number of sync skips recorded per email connection."""

from __future__ import annotations

import uuid

from db.repositories import connection_reads
from sync_engine.runtime import Runtime


async def load_skip_counts(rt: Runtime, sub_account_id: uuid.UUID, connection_ids: list[uuid.UUID]) -> list[int]:
    async with rt.engine.connect() as conn:
        counts = await connection_reads.skip_counts_by_connection_ids(conn, sub_account_id, connection_ids)
    return [counts.get(id_, 0) for id_ in connection_ids]
