"""Users of the sub-account by id."""

from __future__ import annotations

import uuid
from typing import Any

from db.repositories import tenancy
from sync_engine.runtime import Runtime


async def load_users(rt: Runtime, sub_account_id: uuid.UUID, ids: list[uuid.UUID]) -> list[Any]:
    async with rt.engine.connect() as conn:
        rows = await tenancy.users_by_ids(conn, sub_account_id, ids)
    by_id = {row.id: row for row in rows}
    return [by_id.get(id_) for id_ in ids]
