"""Operating the API: liveness, readiness (database, Redis), request ids and request
metrics, driven over HTTP against the app as ``emailsync serve`` builds it (its lifespan
opens the runtime from the settings)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from emailsync.asgi import create_app
from sync_engine.logging_setup import build_handler
from sync_engine.settings import Settings
from tests.support.private_redis import PrivateRedis


def _settings(database_url: str, encryption_key: str, **overrides: object) -> Settings:
    return Settings(database_url=database_url, encryption_keys=encryption_key,
                    queue_name=f"emailsync:test:{uuid.uuid4().hex[:12]}", **overrides)


@asynccontextmanager
async def serving(settings: Settings, app: Starlette | None = None) -> AsyncIterator[httpx.AsyncClient]:
    server = uvicorn.Server(uvicorn.Config(app or create_app(settings), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric from a /metrics body, keyed by their sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def test_healthz_and_readyz_without_redis(database_url: str, encryption_key: str) -> None:
    async with serving(_settings(database_url, encryption_key)) as api:
        health = await api.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ok" and set(body["checks"]) == {"database"}, body
        assert body["checks"]["database"]["status"] == "ok"


async def test_readyz_follows_redis_down_and_back(database_url: str, encryption_key: str,
                                                  private_redis: PrivateRedis) -> None:
    async with serving(_settings(database_url, encryption_key, redis_url=private_redis.url, check_timeout=1.0)) as api:
        async def readiness(expected: int) -> dict:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                response = await api.get("/readyz")
                if response.status_code == expected:
                    return response.json()
                assert asyncio.get_running_loop().time() < deadline, f"/readyz never answered {expected}: {response.text}"
                await asyncio.sleep(0.1)

        up = await readiness(200)
        assert up["checks"]["redis"]["status"] == "ok" and up["checks"]["database"]["status"] == "ok", up

        private_redis.stop()
        down = await readiness(503)
        assert down["status"] == "unavailable", down
        assert down["checks"]["redis"]["status"] == "failed" and down["checks"]["database"]["status"] == "ok", down
        assert private_redis.url not in str(down)
        # The process itself is fine: liveness must not get it restarted.
        assert (await api.get("/healthz")).status_code == 200
        # /metrics still answers, saying which dependency is gone.
        metrics = (await api.get("/metrics")).text
        assert samples(metrics, "emailsync_dependency_up")[(("dependency", "redis"),)] == 0

        private_redis.start()
        back = await readiness(200)
        assert back["checks"]["redis"]["status"] == "ok", back


async def test_metrics_count_requests_by_route_template(database_url: str, encryption_key: str) -> None:
    async with serving(_settings(database_url, encryption_key)) as api:
        first = await api.get("/metrics")
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")

        graphql = await api.post("/graphql", json={"query": "{ __typename }"})
        key = (("method", "POST"), ("route", "/graphql"), ("status", str(graphql.status_code)))
        before = samples(first.text, "emailsync_http_requests_total").get(key, 0.0)
        after = samples((await api.get("/metrics")).text, "emailsync_http_requests_total")
        assert after.get(key, 0.0) == before + 1, after

        # A path with an id is labelled by its route's template, never by the id.
        attachment_id = uuid.uuid4()
        await api.get(f"/attachments/{attachment_id}", params={"sub_account": "x", "expires": "1", "signature": "y"})
        text = (await api.get("/metrics")).text
        assert str(attachment_id) not in text
        routes = {dict(labels)["route"] for labels in samples(text, "emailsync_http_requests_total")}
        assert "/attachments/{attachment_id:uuid}" in routes, routes
        timed = samples(text, "emailsync_http_request_seconds_count")
        assert timed[(("route", "/graphql"),)] >= 1


async def test_request_id_is_echoed_or_made(database_url: str, encryption_key: str) -> None:
    async with serving(_settings(database_url, encryption_key)) as api:
        given = f"req-{uuid.uuid4().hex}"
        response = await api.get("/healthz", headers={"X-Request-ID": given})
        assert response.headers["x-request-id"] == given

        for insane in ("has space", "x" * 200, "quote\"d", ""):
            made = (await api.get("/healthz", headers={"X-Request-ID": insane})).headers["x-request-id"]
            assert made != insane and re.fullmatch(r"[0-9a-f]{32}", made), made
        first, second = (await api.get("/healthz")).headers["x-request-id"], (await api.get("/healthz")).headers["x-request-id"]
        assert first != second


async def test_a_path_cannot_forge_a_log_line(database_url: str, encryption_key: str) -> None:
    """uvicorn percent-decodes the path: ``%0A`` reaches the access line as a newline. It
    must stay one line, in text and in JSON, whatever the path holds."""
    forged = "2026-12-04 18:00:00,000 ERROR api.auth admin token accepted"
    streams = {fmt: io.StringIO() for fmt in ("text", "json")}
    handlers = [build_handler(Settings(log_format=fmt), stream) for fmt, stream in streams.items()]
    access = logging.getLogger("api.access")
    level = access.level
    access.setLevel(logging.INFO)
    for handler in handlers:
        access.addHandler(handler)
    try:
        async with serving(_settings(database_url, encryption_key)) as api:
            request_id = f"forge-{uuid.uuid4().hex}"
            for separator in ("%0A", "%0D%0A", "%E2%80%A8", "%C2%85"):
                path = "/x" + separator + forged.replace(" ", "%20")
                response = await api.get(path, headers={"X-Request-ID": request_id})
                assert response.status_code == 404

            async def logged() -> None:
                deadline = asyncio.get_running_loop().time() + 30
                while min(stream.getvalue().count(request_id) for stream in streams.values()) < 4:
                    assert asyncio.get_running_loop().time() < deadline, streams["text"].getvalue()
                    await asyncio.sleep(0.05)

            await logged()
    finally:
        for handler in handlers:
            access.removeHandler(handler)
        access.setLevel(level)
    text = streams["text"].getvalue()
    assert len(text.splitlines()) == 4 and text.count("\n") == 4, text  # one line per request, by any reader's count
    assert not any(line.startswith("2026-12-04 18:00:00") for line in text.splitlines()), text
    assert "GET /x\\n2026-12-04 18:00:00,000 ERROR" in text, text  # visibly escaped
    lines = [json.loads(line) for line in streams["json"].getvalue().splitlines()]
    assert len(lines) == 4 and {line["request_id"] for line in lines} == {request_id}, lines
    assert lines[0]["path"] == "/x\n" + forged and lines[0]["route"] == "unmatched", lines[0]


async def test_concurrent_scrapes_share_one_reading(database_url: str, encryption_key: str) -> None:
    """Each reading of the database costs a pooled connection: a flood of scrapes takes one
    reading, not one each, and scrapes within the reading's lifetime reuse it."""
    settings = _settings(database_url, encryption_key)
    app = create_app(settings)
    app.state.dependency_checks.reading_ttl = 120.0  # longer than this test, however busy the machine
    async with serving(settings, app) as api:
        def readings() -> float:  # this process's count: the app is served in it
            return REGISTRY.get_sample_value("emailsync_operations_readings_total") or 0.0

        before = readings()
        flood = await asyncio.gather(*(api.get("/metrics") for _ in range(12)))
        assert all(r.status_code == 200 for r in flood)
        assert readings() == before + 1
        assert samples(flood[0].text, "emailsync_operations_readings_total")[()] == before + 1  # it is exposed
        later = await api.get("/metrics")
        assert readings() == before + 1 and later.status_code == 200
        # The reading's aggregates are there, over every live connection (none here).
        assert samples(later.text, "emailsync_live_connections")[()] == 0
        assert samples(later.text, "emailsync_sync_lag_max_seconds")[()] == 0
        assert samples(later.text, "emailsync_sync_backlog_requests")[()] == 0
