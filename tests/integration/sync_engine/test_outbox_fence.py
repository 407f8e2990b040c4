"""An attempt whose claim lapsed and was taken over cannot reach the irreversible step:
the send checkpoint is fenced by the attempt number (real database, both kinds)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from db.engine import create_engine, create_sessionmaker
from db.models import Message, OutboxItem, Thread
from sync_engine.services.outbox import AttemptSuperseded, OutboxCheckpoint
from tests.support.rows import account_with_user


async def test_a_superseded_attempt_cannot_save_its_checkpoint(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            account, user = await account_with_user(session, bcc=f"fence-{uuid.uuid4().hex[:6]}@bcc.test")
            thread = Thread(sub_account_id=account.id, user_id=user.id, subject="s")
            session.add(thread)
            await session.flush()
            message = Message(sub_account_id=account.id, thread_id=thread.id, direction="outbound", origin="crm",
                              status="queued", subject="s", route="sub_account")
            session.add(message)
            await session.flush()
            item = OutboxItem(sub_account_id=account.id, message_id=message.id, route="sub_account", attempts=1)
            session.add(item)
        first = OutboxCheckpoint(sessions, item)
        # The first attempt's lease lapsed and another worker claimed the item again.
        async with sessions.begin() as session:
            await session.execute(update(OutboxItem).where(OutboxItem.id == item.id).values(attempts=2))
        with pytest.raises(AttemptSuperseded):
            await first.save({"smtp": "data_sent"})
        async with sessions() as session:
            assert (await session.get(OutboxItem, item.id)).checkpoint == {}  # type: ignore[union-attr]
        item.attempts = 2
        await OutboxCheckpoint(sessions, item).save({"smtp": "data_sent"})
        async with sessions() as session:
            assert (await session.get(OutboxItem, item.id)).checkpoint == {"smtp": "data_sent"}  # type: ignore[union-attr]
    finally:
        await engine.dispose()
