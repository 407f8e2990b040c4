"""Start-up checks of ``emailsync serve``, ``worker`` and ``migrate``: a misconfigured
process stops at once with one line that says what is wrong and what to do, instead of
a traceback (or, worse, starting and failing every request).

- the database URL names a supported driver, the database answers within
  ``EMAILSYNC_CHECK_TIMEOUT`` seconds, and its schema is at this code's Alembic head
  ("run `emailsync migrate`" otherwise);
- Redis answers PING: for ``serve`` when ``EMAILSYNC_REDIS_URL`` is set, always for
  ``worker``, which refuses to start without that setting (it has no queue otherwise).

Messages name settings and hosts, never a password (URLs are shown with it masked).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from sqlalchemy.engine import URL, make_url

from db.engine import create_engine
from db.repositories.operations import (
    head_revisions,
    known_revisions,
    ping,
    schema_revisions,
)
from sync_engine.logging_setup import redact
from sync_engine.settings import Settings

SUPPORTED_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")
MIGRATE_HINT = "run `emailsync migrate`"


class PreflightError(Exception):
    """A reason not to start, as one line for the operator."""


def _reason(exc: BaseException) -> str:
    """The cause in a few words: class and first line, never more than one line."""
    cause: BaseException = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error...
    while type(cause).__module__.startswith("sqlalchemy") and cause.__cause__ is not None:
        cause = cause.__cause__  # ...in an adapter of its own: name the driver's
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    text = f"{type(cause).__name__}: {first}" if first else type(cause).__name__
    return redact(text)[:200]


def _database_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except Exception:  # ArgumentError, ValueError (a port that is not a number), ...: all say "not a URL"
        raise PreflightError("EMAILSYNC_DATABASE_URL is not a database URL "
                             "(expected postgresql+asyncpg://user@host:5432/db or sqlite+aiosqlite:///path)") from None
    if url.drivername not in SUPPORTED_DRIVERS:
        raise PreflightError(f"EMAILSYNC_DATABASE_URL uses {url.drivername}://, which emailsync does not support: "
                             f"use postgresql+asyncpg:// or sqlite+aiosqlite://")
    return url


def _where(url: URL) -> str:
    if url.drivername.startswith("sqlite"):
        return url.database or ":memory:"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


async def check_database(settings: Settings, *, require_schema: bool = True) -> None:
    url = _database_url(settings.database_url)
    where = _where(url)
    if (require_schema and url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:")
            and not Path(url.database).exists()):  # noqa: ASYNC240 -- one stat at start-up, before serving
        raise PreflightError(f"the database file {where} does not exist: {MIGRATE_HINT} first")
    try:
        engine = create_engine(settings.database_url)
    except Exception as exc:  # a URL make_url accepts and the driver does not (an unknown query argument, ...)
        raise PreflightError(f"EMAILSYNC_DATABASE_URL cannot be used for {where}: {_reason(exc)}") from None
    try:
        async with asyncio.timeout(settings.check_timeout), engine.connect() as conn:
            await ping(conn)
            current = await schema_revisions(conn) if require_schema else frozenset()
    except TimeoutError:
        raise PreflightError(f"the database at {where} did not answer within {settings.check_timeout:g}s "
                             "(check EMAILSYNC_DATABASE_URL and that the server is up)") from None
    except Exception as exc:
        raise PreflightError(f"cannot use the database at {where}: {_reason(exc)} "
                             "(check EMAILSYNC_DATABASE_URL and that the server is up)") from None
    finally:
        await engine.dispose()
    if not require_schema:
        return
    heads = head_revisions()
    if not current:
        raise PreflightError(f"the database at {where} has no emailsync schema: {MIGRATE_HINT}")
    if current != heads:
        unknown = current - known_revisions()
        if unknown:
            raise PreflightError(f"the database at {where} is at schema revision {', '.join(sorted(unknown))}, "
                                 "newer than this emailsync knows: upgrade emailsync")
        raise PreflightError(f"the database schema at {where} is behind this emailsync "
                             f"({', '.join(sorted(current))}, expected {', '.join(sorted(heads))}): {MIGRATE_HINT}")


def masked_redis_url(raw: str) -> str:
    parts = urlsplit(raw)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def check_redis(settings: Settings) -> None:
    raw = settings.redis_url or ""
    try:
        client = Redis.from_url(raw, socket_connect_timeout=settings.check_timeout,
                                socket_timeout=settings.check_timeout)
    except ValueError:
        raise PreflightError("EMAILSYNC_REDIS_URL is not a Redis URL (expected redis://host:6379/0 or rediss://...)") from None
    try:
        async with asyncio.timeout(settings.check_timeout):
            await client.ping()
    except TimeoutError:
        raise PreflightError(f"Redis at {masked_redis_url(raw)} did not answer within {settings.check_timeout:g}s "
                             "(check EMAILSYNC_REDIS_URL and that Redis is up)") from None
    except Exception as exc:
        raise PreflightError(f"cannot reach Redis at {masked_redis_url(raw)}: {_reason(exc)} "
                             "(check EMAILSYNC_REDIS_URL and that Redis is up)") from None
    finally:
        await client.aclose()


async def _serve_checks(settings: Settings) -> None:
    await check_database(settings)
    if settings.redis_url:
        await check_redis(settings)


async def _worker_checks(settings: Settings) -> None:
    await check_database(settings)
    await check_redis(settings)


def check_serve(settings: Settings) -> None:
    asyncio.run(_serve_checks(settings))


def check_worker(settings: Settings) -> None:
    if not settings.redis_url:
        raise PreflightError("emailsync worker needs EMAILSYNC_REDIS_URL (the queue it takes jobs from); "
                             "without Redis, `emailsync serve` runs the jobs in-process")
    asyncio.run(_worker_checks(settings))


def check_migrate(settings: Settings) -> None:
    asyncio.run(check_database(settings, require_schema=False))
