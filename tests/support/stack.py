"""A running emailsync for tests: the API under uvicorn on loopback, the sandbox over HTTPS,
and either the embedded queue (SQLite) or Redis + a separate ``emailsync worker`` process.

Clients talk to it exactly as real ones do: GraphQL over HTTP, subscriptions over
graphql-transport-ws, the sandbox's control API over HTTPS.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from httpx_ws import aconnect_ws

from api.auth import mint_dev_token
from db.models import Contact, SubAccount, User
from emailsync.asgi import create_app
from emailsync.runtime import Runtime, open_runtime
from sync_engine.settings import Settings


def trust(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_settings(*, database_url: str, redis_url: str | None, sandbox_url: str, ca_file: str, port: int,
                   encryption_key: str, **overrides: Any) -> Settings:
    tag = uuid.uuid4().hex[:12]
    overrides.setdefault("queue_name", f"emailsync:test:{tag}")  # no job crosses stacks
    overrides.setdefault("gmail_pubsub_topic", f"projects/emailsync-test/topics/gmail-{tag}")
    return Settings(
        **overrides,
        database_url=database_url,
        redis_url=redis_url,
        public_base_url=f"http://127.0.0.1:{port}",
        encryption_keys=encryption_key,
        ca_bundle=ca_file,
        microsoft_authority=f"{sandbox_url}/common",
        graph_base_url=f"{sandbox_url}/v1.0",
        google_auth_uri=f"{sandbox_url}/o/oauth2/v2/auth",
        google_token_uri=f"{sandbox_url}/token",
        google_revoke_uri=f"{sandbox_url}/revoke",
        google_certs_url=f"{sandbox_url}/oauth2/v1/certs",
        gmail_base_url=sandbox_url,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, list):
            value = ",".join(value)
        env[f"EMAILSYNC_{name.upper()}"] = str(value)
    return env


@dataclass
class Tenant:
    sub_account_id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    bcc_address: str
    token: str
    contact_emails: list[str] = field(default_factory=list)


@dataclass
class Stack:
    settings: Settings
    runtime: Runtime
    sandbox_url: str
    ca_file: str
    http: httpx.AsyncClient
    sandbox: httpx.AsyncClient

    @property
    def base_url(self) -> str:
        return self.settings.public_base_url

    async def graphql(self, query: str, variables: dict[str, Any] | None = None, *, token: str) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers={"Authorization": f"Bearer {token}"})
        body = response.json()
        assert response.status_code == 200 and not body.get("errors"), body
        return body["data"]

    @asynccontextmanager
    async def subscribe(self, query: str, variables: dict[str, Any], *, token: str,
                        base_url: str | None = None) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """Open a graphql-transport-ws subscription (on ``base_url``, another API process of the
        same deployment, if given); yields a queue of ``next`` payloads."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        async with aconnect_ws(f"{base_url or self.base_url}/graphql", self.http,
                               subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
            ack = await ws.receive_json()
            assert ack["type"] == "connection_ack", ack
            await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}})

            async def pump() -> None:
                while True:
                    msg = await ws.receive_json()
                    if msg["type"] == "next":
                        await queue.put(msg["payload"])
                    elif msg["type"] in ("error", "complete"):
                        await queue.put({"__end__": msg})
                        return

            task = asyncio.create_task(pump())
            try:
                yield queue
            finally:
                task.cancel()

    async def seed_tenant(self, *, name: str, labs: bool = True, contacts: tuple[str, ...] = ("ann@client.example",),
                          user_email: str | None = None, role: str = "admin") -> Tenant:
        tag = uuid.uuid4().hex[:8]
        email = user_email or f"user-{tag}@biz.example"
        async with self.runtime.sessions.begin() as session:
            account = SubAccount(agency_id="agency-test", name=name, labs_two_way_sync=labs,
                                 bcc_sync_address=f"sync-{tag}@bcc.emailsync.test")
            session.add(account)
            await session.flush()
            user = User(sub_account_id=account.id, email=email, email_normalized=email.lower(), name=name, role=role)
            session.add(user)
            for c in contacts:
                session.add(Contact(sub_account_id=account.id, email=c, email_normalized=c.lower(), name=c.split("@")[0]))
            await session.flush()
            tenant = Tenant(account.id, user.id, email, account.bcc_sync_address,
                            mint_dev_token(self.settings, user_id=str(user.id), sub_account_id=str(account.id), role=role),
                            list(contacts))
        return tenant

    async def wait_for(self, probe, *, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            result = await probe()
            if result:
                return result
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(interval)


@contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """A separate ``emailsync worker`` for these settings, stopped (SIGTERM, then kill) on exit."""
    worker = subprocess.Popen([sys.executable, "-m", "emailsync.cli", "worker"], env={**os.environ, **settings_env(settings)})
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()


@asynccontextmanager
async def running_stack(*, database_url: str, redis_url: str | None, sandbox_url: str, ca_file: str,
                        encryption_key: str, separate_worker: bool, **overrides: Any) -> AsyncIterator[Stack]:
    port = free_port()
    settings = stack_settings(database_url=database_url, redis_url=redis_url, sandbox_url=sandbox_url,
                              ca_file=ca_file, port=port, encryption_key=encryption_key, **overrides)
    workers = ExitStack()
    async with open_runtime(settings) as runtime:
        app = create_app(settings, runtime=runtime)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        serve_task = asyncio.create_task(server.serve())
        while not server.started:
            if serve_task.done():
                serve_task.result()
            await asyncio.sleep(0.01)
        if separate_worker:
            workers.enter_context(worker_process(settings))
        try:
            async with httpx.AsyncClient(base_url=settings.public_base_url, timeout=30) as http, \
                    httpx.AsyncClient(base_url=sandbox_url, verify=trust(ca_file), timeout=30) as sandbox:
                await register_gmail_push(sandbox, settings)
                yield Stack(settings, runtime, sandbox_url, ca_file, http, sandbox)
        finally:
            workers.close()
            server.should_exit = True
            await serve_task


async def register_gmail_push(sandbox: httpx.AsyncClient, settings: Settings) -> None:
    """What an operator sets up in Google Cloud: a Pub/Sub push subscription on the watch topic."""
    endpoint = f"{settings.public_base_url}/webhooks/gmail"
    response = await sandbox.post("/_sandbox/google/pubsub/subscriptions", json={
        "topic": settings.gmail_pubsub_topic, "pushEndpoint": endpoint,
        "audience": settings.gmail_push_audience or endpoint, "serviceAccountEmail": settings.gmail_push_service_account})
    response.raise_for_status()


def dump(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
