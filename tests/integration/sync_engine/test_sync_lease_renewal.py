"""The sync lease's heartbeat on a real database: only the holder extends it, and a holder
that was taken over learns so (it stops renewing; its page writes are fenced anyway)."""

from __future__ import annotations

from datetime import timedelta

from db.base import utcnow
from db.engine import create_engine, create_sessionmaker
from db.models import EmailConnection
from db.repositories import connections as repo
from tests.support.rows import account_with_user


async def test_only_the_holder_renews_and_a_renewed_lease_is_not_taken_over(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions.begin() as s:
            account, user = await account_with_user(s, bcc="renew@bcc.test")
            conn = EmailConnection(sub_account_id=account.id, user_id=user.id, provider="outlook",
                                   address="u@x.test", status="active", is_current=True)
            s.add(conn)
        now = utcnow()
        lease = timedelta(seconds=20)
        async with sessions.begin() as s:
            assert await repo.acquire_sync_lease(s, conn.id, "A", now, now + lease)
            await repo.bump_sync_request(s, conn.id)
        later = now + timedelta(seconds=15)
        async with sessions.begin() as s:
            assert await repo.renew_sync_lease(s, conn.id, "A", later + lease)
            assert not await repo.renew_sync_lease(s, conn.id, "B", later + lease)  # not B's to renew
        past_first_lease = now + timedelta(seconds=25)
        async with sessions() as s:  # renewed: still A's, nothing stranded
            assert await repo.pending_sync_connections(s, past_first_lease) == []
        async with sessions.begin() as s:
            assert not await repo.acquire_sync_lease(s, conn.id, "B", past_first_lease, past_first_lease + lease)
        after_renewal = later + lease + timedelta(seconds=1)
        async with sessions.begin() as s:  # A died: once its renewal lapses, B takes over...
            assert await repo.pending_sync_connections(s, after_renewal) == [conn.id]
            assert await repo.acquire_sync_lease(s, conn.id, "B", after_renewal, after_renewal + lease)
        async with sessions.begin() as s:  # ...and a late heartbeat of A changes nothing
            assert not await repo.renew_sync_lease(s, conn.id, "A", after_renewal + lease)
            assert await repo.holds_sync_lease(s, conn.id, "B")
    finally:
        await engine.dispose()
