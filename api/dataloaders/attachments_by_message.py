"""Attachment metadata, grouped by message id."""

from __future__ import annotations

import uuid
from typing import Any

from api.dependencies import ApiDependencies
from db.repositories import threads


async def load_attachments_by_message(
    rt: ApiDependencies, sub_account_id: uuid.UUID, message_ids: list[uuid.UUID]
) -> list[list[Any]]:
    async with rt.engine.connect() as conn:
        rows = await threads.attachments_by_message_ids(conn, sub_account_id, message_ids)
    grouped: dict[uuid.UUID, list[Any]] = {id_: [] for id_ in message_ids}
    for row in rows:
        grouped[row.message_id].append(row)
    return [grouped[id_] for id_ in message_ids]
