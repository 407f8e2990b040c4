"""Engine and session factory for SQLite (aiosqlite, embedded default) and PostgreSQL (asyncpg).

PostgreSQL connections that died while idle in the pool (server restarted, backend
terminated, failover) are replaced at checkout without a round trip: asyncpg notices
the closed socket in the background (the event loop reads it even when idle), so the
checkout hook below only reads a local flag. ``pool_pre_ping`` would instead cost one
``SELECT 1`` per checkout, on every request of the API's hot read path. A connection
that dies while in use raises ``DBAPIError`` with ``connection_invalidated`` set;
SQLAlchemy then discards every pooled connection older than that moment, and the job
is retried (``emailsync.worker``) on fresh ones.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def application_name() -> str:
    """What ``pg_stat_activity.application_name`` shows for this process's connections:
    which process holds which connection (operators; tests drop one process's connections)."""
    return f"emailsync:{os.getpid()}"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # A statement's error names the statement but not its parameters: those are message
    # bodies, addresses and tokens, and the error ends up in a log line.
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        # One writer at a time; wait instead of failing with "database is locked".
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    parsed = make_url(url)
    if parsed.get_driver_name() == "asyncpg" and "application_name" not in parsed.query:
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("server_settings", {}).setdefault("application_name", application_name())
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine.pool, "checkout", _discard_if_closed)
    return engine


def _discard_if_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose server side is gone: the pool replaces it (raising
    ``DisconnectionError`` here makes it reconnect and hand out the new one)."""
    raw = getattr(dbapi_conn, "_connection", None)  # the asyncpg connection under the adapter
    is_closed = getattr(raw, "is_closed", None)
    if is_closed is not None and is_closed():
        raise exc.DisconnectionError("the connection was closed by the server while idle in the pool")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
