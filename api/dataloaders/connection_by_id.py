"""Email connections by id (display columns only)."""

from __future__ import annotations

import uuid
from typing import Any

from api.dependencies import ApiDependencies
from db.repositories import connections as connections_repo


async def load_connections(rt: ApiDependencies, sub_account_id: uuid.UUID, ids: list[uuid.UUID]) -> list[Any]:
    async with rt.engine.connect() as conn:
        rows = await connections_repo.connections_by_ids(conn, sub_account_id, ids)
    by_id = {row.id: row for row in rows}
    return [by_id.get(id_) for id_ in ids]
