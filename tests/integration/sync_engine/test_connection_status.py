"""A mailbox that must be connected again stays so until a new sign-in: late jobs (a
failing watch setup, a finishing sync pass) do not make it look usable again."""

from __future__ import annotations

import uuid

from broadcaster import Broadcast

from db.engine import create_engine, create_sessionmaker
from db.models import ConnectionStatus, EmailConnection
from sync_engine.events import BroadcastEventBus
from sync_engine.services.connection_status import ConnectionStatuses
from tests.support.rows import account_with_user


async def test_reauth_required_is_left_only_by_a_new_sign_in(database_url: str) -> None:
    engine = create_engine(database_url)
    broadcast = Broadcast("memory://")
    await broadcast.connect()
    sessions = create_sessionmaker(engine)
    statuses = ConnectionStatuses(sessions, BroadcastEventBus(broadcast))
    try:
        async with sessions.begin() as session:
            account, user = await account_with_user(session, bcc=f"st-{uuid.uuid4().hex[:6]}@bcc.test")
            conn = EmailConnection(sub_account_id=account.id, user_id=user.id, provider="outlook",
                                   address="u@x.test", status=ConnectionStatus.ACTIVE, is_current=True)
            session.add(conn)
        await statuses.set(conn.id, ConnectionStatus.REAUTH_REQUIRED, "the mailbox must be connected again")
        for later in (ConnectionStatus.ERROR, ConnectionStatus.ACTIVE, ConnectionStatus.SYNCING):
            await statuses.set(conn.id, later, "a late job")  # type: ignore[arg-type]
        async with sessions() as session:
            assert (await session.get(EmailConnection, conn.id)).status == ConnectionStatus.REAUTH_REQUIRED  # type: ignore[union-attr]
    finally:
        await broadcast.disconnect()
        await engine.dispose()
