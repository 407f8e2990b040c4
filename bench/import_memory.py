"""Figure: peak memory of the process importing a 10,000-message mailbox, and the end-to-end
import rate into the database (DESIGN.md section 5: the importing worker stays under 300 MB
resident, "stream pages; never hold a mailbox in memory"; Graph import >= 500 messages/s;
Gmail at the per-user quota rate, <= 5.2 quota units per message).

How: the sandbox (in this process) holds a mailbox seeded through the control API's bulk
endpoint (``POST /_sandbox/mailboxes/{a}/inbound/bulk``) with N messages from the tenant's
contacts (so every message syncs; ~5 messages per subject). Our side runs as deployed: in
the default mode PostgreSQL + Redis with ``emailsync serve`` and a separate ``emailsync
worker`` (the importer); in sqlite-embedded mode the ``emailsync serve`` process imports.
The mailbox is connected through the real OAuth flow; the clock starts when our OAuth
callback answers and stops when ``emailConnection.messagesSynced`` reaches N with status
ACTIVE (polled over GraphQL every 0.25 s). The importer's VmRSS is sampled meanwhile and its
VmHWM (peak resident) read at the end, with the same process's VmRSS before the import as
the baseline. Same-run baseline for the rate: the provider adapter alone (this process)
reading the same mailbox from the same sandbox, no database (for Outlook: delta pages; for
Gmail: the full sync's listing and message fetches).

    python bench/import_memory.py [--messages 10000] [--provider outlook|gmail]
        [--mode postgres-redis-worker|sqlite-embedded] [--body-bytes 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import MODES, cpu_seconds, deployment, machine_conditions, mb, proc_status, seed_tenant
from sandbox.server import SandboxServer
from sync_engine.domain import Provider
from sync_engine.providers.registry import build_providers
from sync_engine.settings import Settings
from tests.support.adapters import sign_in
from tests.support.flows import START, app_page, finish_sign_in
from tests.support.stack import Stack, Tenant

TARGET_MB = 300
STATUS = "{ emailConnection { status messagesSynced } }"
WORDS = ("quarterly", "proposal", "listing", "viewing", "schedule", "invoice", "contract", "offer", "garden", "kitchen")


async def seed_mailbox(stack: Stack, provider: str, mailbox: str, contacts: list[str], count: int, body_bytes: int) -> float:
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": provider, "address": mailbox, "name": "Owner"})
    started = time.monotonic()
    chunk = 500
    for start in range(0, count, chunk):
        specs = []
        for i in range(start, min(count, start + chunk)):
            words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(12))
            text = (f"Message {i}. " + words + "\n") * max(1, body_bytes // 100)
            specs.append({"from": {"address": contacts[i % len(contacts)], "name": f"Contact {i % len(contacts)}"},
                          "subject": f"Topic {i // 5}: {WORDS[i % len(WORDS)]}", "text": text[:body_bytes]})
        (await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound/bulk", json={"messages": specs})).raise_for_status()
    return time.monotonic() - started


async def start_connection(stack: Stack, tenant: Tenant, provider: str, mailbox: str) -> None:
    """The browser and app part of connecting (as ``tests.support.flows.connect_mailbox``),
    without waiting for the first sync: that sync is what is measured."""
    return_to = app_page(stack)
    data = await stack.graphql(START, {"input": {"provider": provider.upper(), "redirectUri": return_to,
                                                 "loginHint": mailbox}}, token=tenant.token)
    payload = data["startEmailConnection"]
    assert payload["userErrors"] == [], payload
    await finish_sign_in(stack, tenant, payload["authorizationUrl"], return_to)


async def adapter_baseline(settings: Settings, server: SandboxServer, provider: str, mailbox: str) -> tuple[int, float]:
    """(messages, seconds) for the adapter alone reading the whole mailbox, no database."""
    adapter = build_providers(settings)[Provider(provider)]
    redirect = f"https://app.example/oauth/{provider}/callback"
    account = await sign_in(adapter, server.ca_file, mailbox, redirect)

    async def noop(_tokens: Any) -> None:
        return None

    client = adapter.client(account.tokens, noop)
    started = time.monotonic()
    try:
        count = sum([len([c for c in page.changes if c.message is not None]) async for page in client.sync(None)])
    finally:
        await client.aclose()
    return count, time.monotonic() - started


async def run(args: argparse.Namespace) -> None:
    print(f"import memory and rate: {args.provider}, {args.messages:,} messages, {args.mode}; {machine_conditions()}")
    contacts = [f"client{i}@customers.example" for i in range(args.contacts)]
    with SandboxServer() as server:
        async with deployment(args.mode, server) as (dep, stack):
            pid = dep.importer_pid
            tenant = await seed_tenant(dep.settings, contacts)
            mailbox = f"import-{uuid.uuid4().hex[:6]}@{args.provider}.bench.example"
            seeded = await seed_mailbox(stack, args.provider, mailbox, contacts, args.messages, args.body_bytes)
            print(f"  seeded the sandbox mailbox in {seeded:.1f} s")
            await asyncio.sleep(3)  # let the importer finish starting up
            before = proc_status(pid)
            await stack.sandbox.delete("/_sandbox/requests")
            cpu0 = cpu_seconds(pid)
            samples: list[int] = []
            started = time.monotonic()
            await start_connection(stack, tenant, args.provider, mailbox)
            t0 = time.monotonic()
            last_report, status = t0, None
            while True:
                samples.append(proc_status(pid)["VmRSS"])
                status = (await stack.graphql(STATUS, token=tenant.token))["emailConnection"]
                if status and status["status"] == "ACTIVE" and status["messagesSynced"] >= args.messages:
                    break
                if time.monotonic() - last_report > 15:
                    last_report = time.monotonic()
                    print(f"    ... {status and status['messagesSynced']} messages after {last_report - t0:.0f} s, "
                          f"importer VmRSS {mb(samples[-1])}")
                if time.monotonic() - t0 > args.timeout:
                    raise RuntimeError(f"import did not finish in {args.timeout} s: {status}")
                if dep.importer_pid != pid or (dep.worker or dep.api).poll() is not None:
                    raise RuntimeError(f"the importing process died; logs in {dep.log_dir}")
                await asyncio.sleep(0.25)
            elapsed = time.monotonic() - t0
            cpu = cpu_seconds(pid) - cpu0
            after = proc_status(pid)
            requests = (await stack.sandbox.get("/_sandbox/requests", params={"mailbox": mailbox})).json()
            units = sum(r.get("quotaUnits", 0) for r in requests)
            base_count, base_seconds = await adapter_baseline(dep.settings, server, args.provider, mailbox)

    rate = status["messagesSynced"] / elapsed
    base_rate = base_count / base_seconds
    peak = after["VmHWM"]
    who = "emailsync worker" if args.mode.startswith("postgres") else "emailsync serve (embedded queue)"
    print(f"  importing process: {who}, pid {pid}")
    print(f"    VmRSS before the import:   {mb(before['VmRSS']):>10}")
    print(f"    VmRSS sampled, median/max: {mb(int(statistics.median(samples))):>10} / {mb(max(samples))}")
    print(f"    VmHWM (peak resident):     {mb(peak):>10}   ({'meets' if peak < TARGET_MB * 1024 else 'MISSES'} "
          f"< {TARGET_MB} MB; growth over baseline {mb(peak - before['VmRSS'])})")
    print(f"    VmRSS after the import:    {mb(after['VmRSS']):>10}")
    print(f"  end to end (OAuth callback -> {status['messagesSynced']:,} messages in the DB, ACTIVE): {elapsed:.1f} s "
          f"= {rate:,.0f} messages/s", end="")
    if args.provider == "outlook":
        print(f"   ({'meets' if rate >= 500 else 'MISSES'} >= 500 msg/s)")
    else:
        print(f"   ({units / max(1, status['messagesSynced']):.2f} quota units per message; target <= 5.2)")
    print(f"    (OAuth round trip before the clock started: {t0 - started:.1f} s)")
    print(f"  importer CPU: {cpu:.1f} s = {cpu / max(1, status['messagesSynced']) * 1000:.2f} ms per message "
          f"({cpu / elapsed * 100:.0f}% of one core)")
    print(f"  provider requests during the import: {len(requests):,}, quota units {units:,}")
    print(f"  same-run baseline, adapter alone without DB: {base_count:,} messages in {base_seconds:.1f} s = "
          f"{base_rate:,.0f} messages/s; end-to-end / adapter = {rate / base_rate:.2f}")
    print(f"after the run: {machine_conditions()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--provider", choices=("outlook", "gmail"), default="outlook")
    parser.add_argument("--mode", choices=MODES, default="postgres-redis-worker")
    parser.add_argument("--contacts", type=int, default=200, help="distinct senders (all are contacts)")
    parser.add_argument("--body-bytes", type=int, default=2000, help="text body size per message")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    asyncio.run(run(parser.parse_args()))
