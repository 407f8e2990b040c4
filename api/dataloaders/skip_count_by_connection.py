"""Number of sync skips recorded per email connection."""

from __future__ import annotations

import uuid

from api.dependencies import ApiDependencies
from db.repositories import connections as connections_repo


async def load_skip_counts(rt: ApiDependencies, sub_account_id: uuid.UUID, connection_ids: list[uuid.UUID]) -> list[int]:
    async with rt.engine.connect() as conn:
        counts = await connections_repo.skip_counts_by_connection_ids(conn, sub_account_id, connection_ids)
    return [counts.get(id_, 0) for id_ in connection_ids]
