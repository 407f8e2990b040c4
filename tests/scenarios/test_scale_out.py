"""Two ``emailsync serve`` and two ``emailsync worker`` processes on one PostgreSQL + Redis.

The layout of compose.yaml, run for real: subscribers on either API process receive
every event, each once and in order; a mailbox's mail is imported exactly once though
both workers take jobs; CRM sends are delivered once each.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.ids import to_global_id
from api.types.event import encode_event_cursor
from db.models import Message
from sandbox.server import SandboxServer
from sync_engine.settings import Settings
from tests.support.databases import POSTGRES, REDIS_URL, fresh_database
from tests.support.flows import SEND, connect_mailbox, sandbox_messages
from tests.support.stack import Stack, free_port, running_stack, settings_env, worker_process

INBOX_EVENTS = """subscription($after: String) { inboxEvents(after: $after) { type cursor message { id } } }"""
MAILS = 12
SENDS = 4


@contextmanager
def serve_process(settings: Settings, port: int, log_dir: Path) -> Iterator[str]:
    log = (log_dir / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "emailsync.cli", "serve", "--port", str(port)],
                            env={**os.environ, **settings_env(settings)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
async def stack(sandbox_server: SandboxServer, tmp_path: Path, encryption_key: str) -> AsyncIterator[Stack]:
    # Its own API receives the providers' webhooks, as a load balancer would hand them to either.
    async with fresh_database(POSTGRES, tmp_path) as url, \
            running_stack(database_url=url, redis_url=REDIS_URL, sandbox_url=sandbox_server.base_url,
                          ca_file=sandbox_server.ca_file, encryption_key=encryption_key,
                          separate_worker=False) as stack:
        yield stack


async def _ready(stack: Stack, base_url: str) -> bool:
    try:
        return (await stack.http.get(f"{base_url}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def _collect(events: asyncio.Queue[dict[str, Any]], want: set[str], timeout: float = 90.0) -> list[dict[str, Any]]:
    """Events until every message id in ``want`` was added (and whatever came between)."""
    got: list[dict[str, Any]] = []
    seen: set[str] = set()
    deadline = asyncio.get_running_loop().time() + timeout
    while not want <= seen:
        remaining = deadline - asyncio.get_running_loop().time()
        payload = await asyncio.wait_for(events.get(), timeout=max(remaining, 0.1))
        assert "__end__" not in payload and not payload.get("errors"), payload
        event = payload["data"]["inboxEvents"]
        got.append(event)
        if event["type"] == "MESSAGE_ADDED":
            seen.add(event["message"]["id"])
    return got


async def test_two_apis_and_two_workers(stack: Stack, tmp_path: Path) -> None:
    contact = f"ann-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Scale Homes", contacts=(contact,))
    mailbox = tenant.user_email
    with ExitStack() as processes:
        apis = [processes.enter_context(serve_process(stack.settings, free_port(), tmp_path)) for _ in range(2)]
        for _ in range(2):
            processes.enter_context(worker_process(stack.settings))
        for api in apis:
            await stack.wait_for(lambda api=api: _ready(stack, api), timeout=60, what=f"{api} ready")
        await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)

        start = encode_event_cursor(tenant.sub_account_id, 0)
        async with stack.subscribe(INBOX_EVENTS, {"after": start}, token=tenant.token, base_url=apis[0]) as on_a, \
                stack.subscribe(INBOX_EVENTS, {"after": start}, token=tenant.token, base_url=apis[1]) as on_b:
            for n in range(MAILS):
                arrived = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
                    "from": contact, "to": [mailbox], "subject": f"Inbound {n}", "text": f"mail {n}"})
                assert arrived.status_code == 201, arrived.text

            async def imported() -> list[str] | None:
                async with stack.runtime.sessions() as session:
                    rows = (await session.execute(
                        select(Message.id).where(Message.sub_account_id == tenant.sub_account_id,
                                                 Message.direction == "inbound"))).scalars().all()
                return [to_global_id("Message", r) for r in rows] if len(rows) >= MAILS else None

            await stack.wait_for(imported, timeout=90, what="the inbound mail imported")

            sends = []
            for n in range(SENDS):  # through either API; delivered by whichever worker claims them
                api = apis[n % 2]
                response = await stack.http.post(f"{api}/graphql", headers={"Authorization": f"Bearer {tenant.token}"},
                                                 json={"query": SEND, "variables": {"input": {
                                                     "idempotencyKey": str(uuid.uuid4()), "to": [contact],
                                                     "subject": f"Outbound {n}", "text": "hello"}}})
                payload = response.json()["data"]["sendEmail"]
                assert payload["userErrors"] == [], payload
                sends.append(payload["message"]["id"])

            async def delivered() -> list[dict[str, Any]] | None:
                sent = [m for m in await sandbox_messages(stack, mailbox, "sent") if m["subject"].startswith("Outbound")]
                return sent if len(sent) >= SENDS else None

            await stack.wait_for(delivered, timeout=90, what="every send in Sent Items")

            # Mail imported exactly once, though two workers took the jobs.
            async with stack.runtime.sessions() as session:
                per_provider_id = (await session.execute(
                    select(Message.provider_message_id, func.count()).where(
                        Message.sub_account_id == tenant.sub_account_id, Message.direction == "inbound")
                    .group_by(Message.provider_message_id))).all()
            assert len(per_provider_id) == MAILS and all(count == 1 for _, count in per_provider_id), per_provider_id

            # Both API processes' subscribers saw every event, once each and in the same order.
            inbound_ids = set(await imported() or [])
            want = inbound_ids | set(sends)
            seen_a = await _collect(on_a, want)
            seen_b = await _collect(on_b, want)
            for seen in (seen_a, seen_b):
                added = [e["message"]["id"] for e in seen if e["type"] == "MESSAGE_ADDED"]
                assert len(added) == len(set(added)) == len(want), added
                cursors = [e["cursor"] for e in seen]
                assert len(cursors) == len(set(cursors))
            common = min(len(seen_a), len(seen_b))
            assert [e["cursor"] for e in seen_a[:common]] == [e["cursor"] for e in seen_b[:common]]

        # Sent exactly once each: the Sent folder holds one copy per send, no more.
        sent = [m for m in await sandbox_messages(stack, mailbox, "sent") if m["subject"].startswith("Outbound")]
        assert sorted(m["subject"] for m in sent) == [f"Outbound {n}" for n in range(SENDS)]
