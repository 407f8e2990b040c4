"""Liveness, readiness and the scrape-time readings of ``/metrics``.

- ``GET /healthz`` (api/app.py): the process answers (200 ``{"status": "ok"}``); nothing
  else is touched, so a slow database never gets a live process restarted.
- ``GET /readyz``: the database answers ``SELECT 1`` and, when ``EMAILSYNC_REDIS_URL`` is
  set, Redis answers PING, each within ``EMAILSYNC_CHECK_TIMEOUT`` seconds; 200 with
  each check's result, 503 when any failed (take the replica out of rotation).

``/metrics`` reads the database and the queue once per ``READING_TTL`` seconds at most:
scrapes within that time (a flood of them, or every Prometheus of a deployment) share
one reading, and concurrent scrapes wait for the one being taken (single flight). So
``/metrics`` holds at most one pooled database connection at a time, never one per
scraper, and cannot starve the requests that share the pool. Its figures are up to
``READING_TTL`` seconds old.

The probes use a Redis client of their own: a PING must not wait behind the queue's or
the event bus's traffic, and must fail fast (short socket timeouts) when Redis is gone.
Errors are reported by exception class only: a message could carry a URL or a host.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from db.repositories.operations import (
    ConnectionSyncState,
    LiveConnectionsSummary,
    current_connections_by_status,
    live_connection_sync_states,
    live_connections_summary,
    ping,
)
from sync_engine.metrics import (
    CONNECTION_SERIES_LIMIT,
    OPERATIONS_READINGS,
    OperationsReading,
)
from sync_engine.settings import Settings

# Seconds one /metrics reading of the database and the queue serves scrapes for.
READING_TTL = 5.0


class DependencyChecks:
    """What the API depends on, probed within a bounded time. One per app."""

    def __init__(self, settings: Settings, *, reading_ttl: float = READING_TTL) -> None:
        self.timeout = settings.check_timeout
        self.reading_ttl = reading_ttl
        self._reading_lock = asyncio.Lock()
        self._last_reading: tuple[float, OperationsReading] | None = None
        self.queue_name = settings.queue_name
        self.redis: Redis | None = None
        if settings.redis_url:
            # One quick retry: the first command after a Redis restart meets a dead pooled socket.
            self.redis = Redis.from_url(settings.redis_url, socket_connect_timeout=self.timeout,
                                        socket_timeout=self.timeout, retry=Retry(NoBackoff(), 1),
                                        retry_on_error=[RedisConnectionError])

    async def _bounded(self, probe: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                await probe
        except TimeoutError:
            return {"status": "failed", "error": f"no answer within {self.timeout:g}s"}
        except Exception as exc:  # any failure means "not ready"; the class says which
            return {"status": "failed", "error": type(exc).__name__}
        return {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}

    async def check_database(self, engine: AsyncEngine) -> dict[str, Any]:
        async def probe() -> None:
            async with engine.connect() as conn:
                await ping(conn)

        return await self._bounded(probe())

    async def check_redis(self) -> dict[str, Any] | None:
        if self.redis is None:
            return None
        return await self._bounded(self.redis.ping())

    async def readiness(self, engine: AsyncEngine) -> tuple[bool, dict[str, Any]]:
        database, redis = await asyncio.gather(self.check_database(engine), self.check_redis())
        checks = {"database": database} if redis is None else {"database": database, "redis": redis}
        return all(c["status"] == "ok" for c in checks.values()), checks

    async def reading(self, engine: AsyncEngine) -> OperationsReading:
        """What ``/metrics`` reports from the database and the queue: the last reading while
        it is fresh, else a new one (taken by one scrape while the others wait for it)."""
        async with self._reading_lock:
            last = self._last_reading
            if last is not None and time.monotonic() - last[0] < self.reading_ttl:
                return last[1]
            reading = await self._read(engine)
            self._last_reading = (time.monotonic(), reading)
            return reading

    async def _read(self, engine: AsyncEngine) -> OperationsReading:
        """One reading, each source bounded by the timeout."""
        OPERATIONS_READINGS.inc()

        async def from_database() -> tuple[list[ConnectionSyncState], LiveConnectionsSummary, dict[str, int]] | None:
            try:
                async with asyncio.timeout(self.timeout), engine.connect() as conn:
                    return (await live_connection_sync_states(conn, CONNECTION_SERIES_LIMIT),
                            await live_connections_summary(conn), await current_connections_by_status(conn))
            except Exception:  # reported as emailsync_dependency_up{dependency="database"} 0
                return None

        async def queue_depth() -> int | None:
            if self.redis is None:
                return None
            try:
                async with asyncio.timeout(self.timeout):
                    # arq keeps a queue's jobs in a sorted set named after the queue.
                    return int(await self.redis.zcard(self.queue_name))
            except Exception:  # reported as emailsync_dependency_up{dependency="redis"} 0
                return None

        db_part, depth = await asyncio.gather(from_database(), queue_depth())
        now = datetime.now(UTC)

        def lag_of(synced_at: datetime | None) -> float:
            return max((now - synced_at).total_seconds(), 0.0) if synced_at else 0.0

        if db_part is None:
            return OperationsReading(database_up=False, redis_up=None if self.redis is None else depth is not None,
                                     queue_depth=depth)
        states, summary, by_status = db_part
        return OperationsReading(
            database_up=True, redis_up=None if self.redis is None else depth is not None, queue_depth=depth,
            connection_lag=tuple((str(s.connection_id), lag_of(s.synced_at), s.pending_requests) for s in states),
            connections_by_status=by_status, live_connections=summary.count,
            max_lag_seconds=lag_of(summary.oldest_synced_at), pending_requests=summary.pending_requests)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


async def readyz(request: Request) -> Response:
    checks: DependencyChecks = request.app.state.dependency_checks
    ready, results = await checks.readiness(request.app.state.runtime.engine)
    return JSONResponse({"status": "ok" if ready else "unavailable", "checks": results},
                        status_code=200 if ready else 503, headers={"Cache-Control": "no-store"})
