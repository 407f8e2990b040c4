"""A mailbox connected again: the new connection takes over the old one's mail.

Messages, threads and sync skips are unique per connection (provider ids, Message-ID,
conversation key). Without this, disconnecting and later reconnecting the same mailbox
would import it again into a second copy of every thread. The most recent earlier
connection of the same user, provider and address hands its rows over, so the new
connection's full sync finds them and dedupes as it always does, and replies in old
threads land where they belong. (Older connections had already handed theirs on.)
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EmailConnection, Message, SyncSkip, Thread


async def adopt_previous_mailbox(
    session: AsyncSession, *, new_connection_id: uuid.UUID, user_id: uuid.UUID, provider: str, address: str
) -> uuid.UUID | None:
    """Move the latest earlier connection's threads, messages and skips to the new one;
    returns that connection's id, or None when this mailbox was never connected before."""
    previous = await session.scalar(
        select(EmailConnection.id)
        .where(
            EmailConnection.user_id == user_id,
            EmailConnection.provider == provider,
            func.lower(EmailConnection.address) == address.lower(),
            EmailConnection.id != new_connection_id,
            EmailConnection.is_current.is_(False),
        )
        .order_by(EmailConnection.created_at.desc())
        .limit(1)
    )
    if previous is None:
        return None
    for model in (Thread, Message, SyncSkip):
        await session.execute(
            update(model)
            .where(model.connection_id == previous)
            .values(connection_id=new_connection_id)
            .execution_options(synchronize_session=False)
        )
    return previous
