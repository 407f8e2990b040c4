"""Shared pieces of the end-to-end benchmarks: a fresh database, the API and the worker as
real subprocesses (``emailsync serve`` / ``emailsync worker``), a seeded tenant, and /proc
readings. Not a benchmark itself.

Layout of a run: the sandbox (``SandboxServer``) runs in the benchmark's own process (it
stands in for Microsoft and Google); our API and, for the distributed mode, our worker run
as separate processes, exactly as deployed, so their memory and CPU are theirs alone and
the benchmark client does not share their GIL.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api.auth import mint_dev_token  # noqa: E402
from db.engine import create_engine, create_sessionmaker  # noqa: E402
from db.models import Contact, SubAccount, User  # noqa: E402
from sandbox.server import SandboxServer  # noqa: E402
from sync_engine.settings import Settings  # noqa: E402
from tests.support.databases import REDIS_URL, create_database, drop_database  # noqa: E402
from tests.support.stack import Stack, Tenant, free_port, register_gmail_push, settings_env, stack_settings, trust  # noqa: E402

MODES = ("sqlite-embedded", "postgres-redis-worker")


async def open_subscription(url: str, token: str, query: str) -> ClientConnection:
    """One graphql-transport-ws client (its own TCP connection) subscribed to ``query``."""
    ws = await connect(url, subprotocols=["graphql-transport-ws"], open_timeout=60, max_queue=None)  # type: ignore[arg-type]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 60))
    assert ack["type"] == "connection_ack", ack
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return ws


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / VmSize of a process, in kB (from /proc/PID/status)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "VmSize", "Threads"):
            out[key] = int(value.split()[0])
    return out


def mb(kb: int) -> str:
    return f"{kb / 1024:,.1f} MB"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_conditions() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"


def _child_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAILSYNC_")}
    env.update(settings_env(settings))
    env.update(extra or {})
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class Deployment:
    """Our side of a run: the API process and, in the distributed mode, a worker process."""

    settings: Settings
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes] | None
    log_dir: Path

    @property
    def importer_pid(self) -> int:
        """The process that runs the sync jobs."""
        return (self.worker or self.api).pid


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "emailsync.cli", *args], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _wait_healthy(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"emailsync serve exited ({proc.returncode}); see {log}:\n{log.read_text()[-3000:]}")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("emailsync serve did not become healthy")


@asynccontextmanager
async def deployment(mode: str, server: SandboxServer, *, api_env: dict[str, str] | None = None,
                     **overrides: Any) -> AsyncIterator[tuple[Deployment, Stack]]:
    """A fresh database (SQLite file, or a PostgreSQL database dropped afterwards), then
    ``emailsync serve`` (+ ``emailsync worker`` on Redis in the distributed mode).

    Yields the deployment and a ``tests.support.stack.Stack`` whose ``runtime`` is None:
    only its client-side helpers (graphql, subscribe, wait_for, sandbox) are usable, which is
    what ``tests.support.flows.connect_mailbox`` needs.
    """
    assert mode in MODES, mode
    distributed = mode.startswith("postgres")
    with tempfile.TemporaryDirectory(prefix="emailsync-bench-") as tmp:
        tmp_path = Path(tmp)
        url, db_name = await create_database("postgres" if distributed else "sqlite", tmp_path)
        api: subprocess.Popen[bytes] | None = None
        worker: subprocess.Popen[bytes] | None = None
        try:
            port = free_port()
            overrides.setdefault("queue_name", f"emailsync:bench:{uuid.uuid4().hex[:12]}")
            settings = stack_settings(database_url=url, redis_url=REDIS_URL if distributed else None,
                                      sandbox_url=server.base_url, ca_file=server.ca_file, port=port,
                                      encryption_key=Fernet.generate_key().decode(), **overrides)
            env = _child_env(settings)
            api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
            api = _start(["serve", "--host", "127.0.0.1", "--port", str(port)], {**env, **(api_env or {})}, api_log)
            if distributed:
                worker = _start(["worker"], env, worker_log)
            await _wait_healthy(settings.public_base_url, api, api_log)
            async with httpx.AsyncClient(base_url=settings.public_base_url, timeout=60) as http, \
                    httpx.AsyncClient(base_url=server.base_url, verify=trust(server.ca_file), timeout=60) as sandbox:
                await register_gmail_push(sandbox, settings)
                stack = Stack(settings, None, server.base_url, server.ca_file, http, sandbox)  # type: ignore[arg-type]
                yield Deployment(settings, api, worker, tmp_path), stack
        finally:
            _stop(worker)
            _stop(api)
            await drop_database(db_name)


async def seed_tenant(settings: Settings, contacts: list[str], *, name: str = "Bench") -> Tenant:
    """A sub-account with labs on, one admin user and the given contacts (direct inserts)."""
    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    tag = uuid.uuid4().hex[:8]
    email = f"user-{tag}@biz.example"
    try:
        async with sessions.begin() as session:
            account = SubAccount(agency_id="agency-bench", name=name, labs_two_way_sync=True,
                                 bcc_sync_address=f"sync-{tag}@bcc.emailsync.test")
            session.add(account)
            await session.flush()
            user = User(sub_account_id=account.id, email=email, email_normalized=email, name=name, role="admin")
            session.add(user)
            session.add_all(Contact(sub_account_id=account.id, email=c, email_normalized=c.lower(), name=c.split("@")[0])
                            for c in contacts)
            await session.flush()
            token = mint_dev_token(settings, user_id=str(user.id), sub_account_id=str(account.id), role="admin")
            return Tenant(account.id, user.id, email, account.bcc_sync_address, token, list(contacts))
    finally:
        await engine.dispose()
