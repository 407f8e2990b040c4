"""Attachment content, read for a download, scoped to one sub-account.

The metadata lists (without content) are in ``threads.attachments_by_message_ids``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.models import Attachment

attachments_t = Attachment.__table__


async def attachment_file(conn: AsyncConnection | AsyncSession, sub_account_id: uuid.UUID, attachment_id: uuid.UUID) -> Row[Any] | None:
    """``filename``, ``content_type`` and ``content`` of one attachment of this sub-account;
    None for an unknown id or one of another sub-account (indistinguishable on purpose)."""
    a = attachments_t
    stmt = select(*[a.c[name] for name in ("filename", "content_type", "content")]).where(
        a.c.id == attachment_id, a.c.sub_account_id == sub_account_id
    )
    return (await conn.execute(stmt)).first()
