"""Liveness, readiness and the scrape-time readings of ``/metrics``.

- ``GET /healthz`` (api/app.py): the process answers (200 ``{"status": "ok"}``); nothing
  else is touched, so a slow database never gets a live process restarted.
- ``GET /readyz``: the database answers ``SELECT 1`` and, when ``EMAILSYNC_REDIS_URL`` is
  set, Redis answers PING, each within ``EMAILSYNC_CHECK_TIMEOUT`` seconds; 200 with
  each check's result, 503 when any failed (take the replica out of rotation).

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
    current_connections_by_status,
    live_connection_sync_states,
    ping,
)
from sync_engine.metrics import OperationsReading
from sync_engine.settings import Settings


class DependencyChecks:
    """What the API depends on, probed within a bounded time. One per app."""

    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.check_timeout
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
        """Everything ``/metrics`` reads at scrape time, each source bounded by the timeout."""

        async def from_database() -> tuple[list[Any], dict[str, int]] | None:
            try:
                async with asyncio.timeout(self.timeout), engine.connect() as conn:
                    return await live_connection_sync_states(conn), await current_connections_by_status(conn)
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
        lag: tuple[tuple[str, float, int], ...] = ()
        by_status: dict[str, int] = {}
        if db_part is not None:
            states, by_status = db_part
            lag = tuple((str(s.connection_id), max((now - s.synced_at).total_seconds(), 0.0) if s.synced_at else 0.0,
                         s.pending_requests) for s in states)
        return OperationsReading(database_up=db_part is not None,
                                 redis_up=None if self.redis is None else depth is not None,
                                 queue_depth=depth, connection_lag=lag, connections_by_status=by_status)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


async def readyz(request: Request) -> Response:
    checks: DependencyChecks = request.app.state.dependency_checks
    ready, results = await checks.readiness(request.app.state.runtime.engine)
    return JSONResponse({"status": "ok" if ready else "unavailable", "checks": results},
                        status_code=200 if ready else 503, headers={"Cache-Control": "no-store"})
