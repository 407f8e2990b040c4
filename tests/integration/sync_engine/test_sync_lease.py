"""One sync per mailbox, and no request lost: the lease/sequence protocol on a real database."""

from __future__ import annotations

from datetime import timedelta

from db.base import utcnow
from db.engine import create_engine, create_sessionmaker
from db.models import EmailConnection
from db.repositories import connections as repo
from tests.support.rows import account_with_user


async def _connection(sessions) -> EmailConnection:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        account, user = await account_with_user(session, bcc="sync-lease@bcc.test")
        conn = EmailConnection(sub_account_id=account.id, user_id=user.id, provider="outlook", address="u@x.test",
                               status="active", is_current=True)
        session.add(conn)
    return conn


async def test_second_pass_waits_and_a_request_during_a_pass_forces_another_round(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _connection(sessions)
        now = utcnow()
        async with sessions.begin() as s:
            assert await repo.acquire_sync_lease(s, conn.id, "A", now, now + timedelta(minutes=5))
        async with sessions.begin() as s:  # one pass at a time
            assert not await repo.acquire_sync_lease(s, conn.id, "B", now, now + timedelta(minutes=5))
        # A started its pass having seen request 0; a notification arrives meanwhile.
        async with sessions.begin() as s:
            await repo.bump_sync_request(s, conn.id)
        async with sessions.begin() as s:
            refreshed = await s.get(EmailConnection, conn.id)
            refreshed.sync_done_seq = 0
            await s.flush()
            assert not await repo.release_sync_lease(s, conn.id, "A")  # must run again
            assert await repo.holds_sync_lease(s, conn.id, "A")
        async with sessions.begin() as s:
            refreshed = await s.get(EmailConnection, conn.id)
            refreshed.sync_done_seq = refreshed.sync_requested_seq  # the second round covered it
            await s.flush()
            assert await repo.release_sync_lease(s, conn.id, "A")
        async with sessions.begin() as s:
            assert await repo.acquire_sync_lease(s, conn.id, "B", now, now + timedelta(minutes=5))
    finally:
        await engine.dispose()


async def test_requests_stranded_by_a_dead_worker_are_found_once_its_lease_expires(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _connection(sessions)
        now = utcnow()
        async with sessions.begin() as s:
            assert await repo.acquire_sync_lease(s, conn.id, "dead", now, now + timedelta(minutes=5))
            await repo.bump_sync_request(s, conn.id)
        async with sessions() as s:
            assert await repo.pending_sync_connections(s, now) == []  # still leased: its holder would serve it
            assert await repo.pending_sync_connections(s, now + timedelta(minutes=6)) == [conn.id]
        async with sessions.begin() as s:  # and a new pass may take over the expired lease
            later = now + timedelta(minutes=6)
            assert await repo.acquire_sync_lease(s, conn.id, "new", later, later + timedelta(minutes=5))
            assert not await repo.holds_sync_lease(s, conn.id, "dead")
    finally:
        await engine.dispose()
