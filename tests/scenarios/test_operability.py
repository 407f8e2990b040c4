"""Running emailsync as an operator does: the real ``emailsync serve`` / ``worker`` /
``migrate`` processes, their start-up errors, JSON logs, and the metrics they expose."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from api.preflight import check_serve
from db.models import EmailConnection
from sync_engine.settings import Settings
from tests.support.databases import POSTGRES, REDIS_URL, SQLITE, create_database, fresh_database
from tests.support.flows import connect_mailbox
from tests.support.stack import Stack, free_port

CLI = [sys.executable, "-m", "emailsync.cli"]


def _env(**settings: str) -> dict[str, str]:
    """The test runner's environment without any EMAILSYNC_ setting of its own, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAILSYNC_") or k.startswith("EMAILSYNC_TEST_")}
    env.update({f"EMAILSYNC_{name.upper()}": value for name, value in settings.items()})
    return env


@contextmanager
def running(args: list[str], env: dict[str, str], stderr_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    with stderr_file.open("wb") as err:
        proc = subprocess.Popen(CLI + args, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until(probe, *, timeout: float = 60.0, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def get_or_none(url: str, **kwargs) -> httpx.Response | None:  # type: ignore[no-untyped-def]
    try:
        return httpx.get(url, timeout=5, **kwargs)
    except httpx.TransportError:
        return None


def json_lines(path: Path) -> list[dict]:
    """Every complete line of a log file, each of which must be one JSON object."""
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


# --- JSON logs ----------------------------------------------------------------------


def test_serve_logs_json_lines_tagged_with_the_request_id(database_url: str, encryption_key: str, tmp_path: Path) -> None:
    port = free_port()
    secret = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0." + uuid.uuid4().hex
    request_id = f"op-{uuid.uuid4().hex}"
    log_file = tmp_path / "serve.stderr"
    env = _env(database_url=database_url, encryption_keys=encryption_key, log_format="json",
               public_base_url=f"http://127.0.0.1:{port}")
    with running(["serve", "--port", str(port)], env, log_file) as proc:
        wait_until(lambda: ((r := get_or_none(f"http://127.0.0.1:{port}/healthz")) is not None and r.status_code == 200)
                   or proc.poll() is not None, what="the API to answer")
        assert proc.poll() is None, log_file.read_text()
        # A refused Graph notification: the API logs why, while handling the request.
        response = httpx.post(f"http://127.0.0.1:{port}/webhooks/graph", timeout=10,
                              headers={"X-Request-ID": request_id, "Authorization": f"Bearer {secret}"},
                              json={"value": [{"subscriptionId": "nope", "clientState": secret,
                                               "changeType": "created", "resource": "me/messages/1"}]})
        assert response.status_code == 400 and response.headers["x-request-id"] == request_id
        graphql = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ __typename }"}, timeout=10,
                             headers={"Authorization": f"Bearer {secret}", "X-Api-Key": f"esk_{secret}"})
        assert graphql.headers["x-request-id"]
        # A token pasted into a path: the access line logs the path (message and field).
        leaked_id = f"op-{uuid.uuid4().hex}"
        leaked = httpx.get(f"http://127.0.0.1:{port}/attachments/{secret}", headers={"X-Request-ID": leaked_id},
                           timeout=10)
        assert leaked.status_code == 404

        def tagged() -> list[dict]:
            lines = [line for line in json_lines(log_file) if line.get("request_id") == request_id]
            return lines if {line["logger"] for line in lines} >= {"api.webhooks", "api.access"} else []

        mine = wait_until(tagged, timeout=30, what="log lines tagged with the request id")
        leaked_line = wait_until(lambda: next((line for line in json_lines(log_file)
                                               if line.get("request_id") == leaked_id), None),
                                 timeout=30, what="the access line of the request with a token in its path")
    lines = json_lines(log_file)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    access = next(line for line in mine if line["logger"] == "api.access")
    assert access["route"] == "/webhooks/graph" and access["status"] == 400
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # the server's own lines too
    assert leaked_line["path"] == "/attachments/[redacted]" and "[redacted]" in leaked_line["message"], leaked_line
    assert secret not in log_file.read_text()


def test_worker_serves_metrics_and_logs_json(database_url: str, encryption_key: str, tmp_path: Path) -> None:
    metrics_port = free_port()
    log_file = tmp_path / "worker.stderr"
    env = _env(database_url=database_url, encryption_keys=encryption_key, log_format="json", redis_url=REDIS_URL,
               queue_name=f"emailsync:test:{uuid.uuid4().hex[:12]}", worker_metrics_port=str(metrics_port))
    with running(["worker"], env, log_file) as proc:
        metrics = wait_until(lambda: get_or_none(f"http://127.0.0.1:{metrics_port}/metrics") or proc.poll() is not None,
                             what="the worker's metrics endpoint")
        assert proc.poll() is None, log_file.read_text()
        assert metrics.status_code == 200
        names = {family.name for family in text_string_to_metric_families(metrics.text)}
        assert {"emailsync_job_runs", "emailsync_worker_restarts"} <= names, names
        wait_until(lambda: any(line["logger"].startswith("arq") for line in json_lines(log_file)), timeout=30,
                   what="the worker's JSON log lines")


# --- Start-up errors: one line, no traceback ---------------------------------------


def _start_error(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run([*CLI, *args], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _closed_port() -> int:
    return free_port()  # bound then released: nothing listens there


@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_wrong_database_url_is_one_line(command: str, encryption_key: str) -> None:
    closed = _closed_port()
    base = {"encryption_keys": encryption_key, "redis_url": REDIS_URL}
    unreachable = _start_error([command], _env(database_url=f"postgresql+asyncpg://postgres:pw-{closed}@127.0.0.1:{closed}/x", **base))
    assert "cannot use the database at 127.0.0.1:" in unreachable and "EMAILSYNC_DATABASE_URL" in unreachable
    assert f"pw-{closed}" not in unreachable
    scheme = _start_error([command], _env(database_url="mysql://root@127.0.0.1/emailsync", **base))
    assert "EMAILSYNC_DATABASE_URL" in scheme and "postgresql+asyncpg://" in scheme
    nonsense = _start_error([command], _env(database_url="not a url at all", **base))
    assert "EMAILSYNC_DATABASE_URL is not a database URL" in nonsense
    bad_port = _start_error([command], _env(database_url="postgresql+asyncpg://u@host:notaport/db", **base))
    assert "EMAILSYNC_DATABASE_URL is not a database URL" in bad_port


async def test_unmigrated_databases_say_run_migrate(encryption_key: str, tmp_path: Path) -> None:
    # A PostgreSQL database without any table.
    async with fresh_database(POSTGRES, tmp_path, revision=None) as empty:
        for command in ("serve", "worker"):
            line = await asyncio.to_thread(_start_error, [command], _env(database_url=empty,
                                               encryption_keys=encryption_key, redis_url=REDIS_URL))
            assert "no emailsync schema" in line and "run `emailsync migrate`" in line, line
    # A SQLite database migrated by an older version (first revision only).
    old, _ = await create_database(SQLITE, tmp_path, revision="0001")
    line = await asyncio.to_thread(_start_error, ["serve"], _env(database_url=old, encryption_keys=encryption_key))
    assert "is behind" in line and "run `emailsync migrate`" in line, line
    # A SQLite file that does not exist yet.
    missing = f"sqlite+aiosqlite:///{tmp_path / 'missing.db'}"
    line = await asyncio.to_thread(_start_error, ["serve"], _env(database_url=missing, encryption_keys=encryption_key))
    assert "does not exist" in line and "run `emailsync migrate`" in line, line
    assert not (tmp_path / "missing.db").exists()  # the check created nothing
    # `emailsync migrate` brings it to head, and then the same start-up check passes.
    result = await asyncio.to_thread(subprocess.run, [*CLI, "migrate"], check=False, capture_output=True, text=True, timeout=120,
                                     env=_env(database_url=old, encryption_keys=encryption_key))
    assert result.returncode == 0, result.stderr
    await asyncio.to_thread(check_serve, Settings(database_url=old, encryption_keys=encryption_key))


def test_redis_unreachable_or_missing_is_one_line(database_url: str, encryption_key: str) -> None:
    closed = _closed_port()
    base = {"database_url": database_url, "encryption_keys": encryption_key}
    for command in ("serve", "worker"):
        line = _start_error([command], _env(redis_url=f"redis://:pw-{closed}@127.0.0.1:{closed}/0", **base))
        assert f"cannot reach Redis at redis://127.0.0.1:{closed}/0" in line and "EMAILSYNC_REDIS_URL" in line, line
        assert f"pw-{closed}" not in line
    line = _start_error(["worker"], _env(**base))
    assert "needs EMAILSYNC_REDIS_URL" in line, line


# --- Scrape-time gauges -------------------------------------------------------------


async def test_metrics_show_sync_lag_of_a_connected_mailbox(stack: Stack) -> None:
    tenant = await stack.seed_tenant(name="Metrics Realty")
    await connect_mailbox(stack, tenant, "OUTLOOK", tenant.user_email)
    async with stack.runtime.sessions() as session:
        connection_id = str(await session.scalar(select(EmailConnection.id).where(
            EmailConnection.user_id == tenant.user_id, EmailConnection.is_current.is_(True))))

    response = await stack.http.get("/metrics")
    assert response.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    lag = {s.labels["connection"]: s.value for s in families["emailsync_sync_lag_seconds"].samples}
    pending = {s.labels["connection"]: s.value for s in families["emailsync_sync_pending_requests"].samples}
    assert connection_id in lag and 0 <= lag[connection_id] < 600, lag
    assert connection_id in pending and pending[connection_id] >= 0, pending
    assert tenant.user_email not in response.text  # labelled by id, never by address
    statuses = {s.labels["status"]: s.value for s in families["emailsync_connections"].samples}
    assert statuses.get("active", 0) >= 1, statuses
    if stack.settings.redis_url:  # the queue is Redis: its depth is read at scrape time
        assert "emailsync_queue_depth" in families and families["emailsync_queue_depth"].samples[0].value >= 0
    else:
        assert "emailsync_queue_depth" not in families
