"""The sync figures ``/metrics`` reads: a bounded list of the connections furthest behind,
and aggregates over every live connection, however many there are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db.engine import create_engine, create_sessionmaker
from db.models import EmailConnection, User
from db.repositories.operations import (
    live_connection_sync_states,
    live_connections_summary,
)
from tests.support.rows import account_with_user


async def test_the_furthest_behind_first_and_aggregates_over_all(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        async with sessions.begin() as session:
            account, _ = await account_with_user(session, bcc="ops-figures@bcc.test")
            ids: dict[str, object] = {}

            async def connection(name: str, *, status: str = "active", current: bool = True,
                                 synced_minutes_ago: int | None = None, requested: int = 0, done: int = 0) -> None:
                user = User(sub_account_id=account.id, email=f"{name}@x.test", email_normalized=f"{name}@x.test",
                            role="user")
                session.add(user)
                await session.flush()
                row = EmailConnection(
                    sub_account_id=account.id, user_id=user.id, provider="outlook", address=f"{name}@x.test",
                    status=status, is_current=current, connected_at=now - timedelta(days=1),
                    last_sync_at=None if synced_minutes_ago is None else now - timedelta(minutes=synced_minutes_ago),
                    sync_requested_seq=requested, sync_done_seq=done)
                session.add(row)
                await session.flush()
                ids[name] = row.id

            await connection("fresh", synced_minutes_ago=1, requested=3, done=1)
            await connection("stale", synced_minutes_ago=90, requested=5, done=5)
            await connection("never", synced_minutes_ago=None, requested=1, done=0)  # connected a day ago
            await connection("middle", status="error", synced_minutes_ago=30, requested=2, done=4)  # done ahead: 0
            # Not live, or replaced: in no figure, however far behind.
            await connection("revoked", status="reauth_required", synced_minutes_ago=10_000, requested=9)
            await connection("old", status="disconnected", current=False, synced_minutes_ago=20_000, requested=9)

        async with engine.connect() as conn:
            top = await live_connection_sync_states(conn, 2)
            everything = await live_connection_sync_states(conn, 100)
            summary = await live_connections_summary(conn)
        assert [s.connection_id for s in top] == [ids["never"], ids["stale"]]
        assert [s.connection_id for s in everything] == [ids[n] for n in ("never", "stale", "middle", "fresh")]
        assert {s.connection_id: s.pending_requests for s in everything} == {
            ids["never"]: 1, ids["stale"]: 0, ids["middle"]: 0, ids["fresh"]: 2}
        assert summary.count == 4 and summary.pending_requests == 3
        assert summary.oldest_synced_at == now - timedelta(days=1)
    finally:
        await engine.dispose()


async def test_no_live_connection_reads_as_zeros(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            summary = await live_connections_summary(conn)
            assert await live_connection_sync_states(conn, 10) == []
        assert (summary.count, summary.oldest_synced_at, summary.pending_requests) == (0, None, 0)
    finally:
        await engine.dispose()
