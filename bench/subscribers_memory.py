"""Figure: resident memory of one API process holding 1,000 open subscriptions, and whether
an event still reaches all of them (DESIGN.md section 5: 1,000 subscribers per API process,
under 300 MB resident).

How: ``emailsync serve`` runs as a subprocess (with the sandbox in this process standing in
for Microsoft). A tenant connects an Outlook mailbox through the real OAuth flow; then N
clients (``websockets``, graphql-transport-ws, each its own TCP connection and
``connection_init`` with the user's bearer token) subscribe to ``inboxEvents``, opened in
batches. VmRSS of the API process (/proc/PID/status) is read: after start-up and the
connect flow (before), with one subscription (the code path warmed up), with all N, and
after one event (a contact's mail arriving in the mailbox: webhook, sync, publish) has
fanned out to them; VmHWM is the peak. The script counts how many subscribers received
MESSAGE_ADDED and how long the fan-out took (control call -> last subscriber).

Modes: sqlite-embedded (in-process queue and memory broadcast; the API process also runs
the sync) and postgres-redis-worker (broadcaster on Redis, a separate worker process).

    python bench/subscribers_memory.py [--subscribers 1000] [--modes sqlite-embedded,postgres-redis-worker]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import (
    MODES,
    cpu_seconds,
    deployment,
    machine_conditions,
    mb,
    open_subscription,
    proc_status,
    seed_tenant,
)
from sandbox.server import SandboxServer
from tests.support.flows import connect_mailbox

CONTACT = "ann@client.example"
INBOX_EVENTS = "subscription { inboxEvents { type occurredAt message { id subject } } }"
TARGET_MB = 300


async def listen(ws: ClientConnection, received: dict[int, float], key: int) -> None:
    """Record when this subscriber got MESSAGE_ADDED; answer nothing else."""
    async for raw in ws:
        msg = json.loads(raw)
        if msg["type"] == "next" and msg["payload"].get("data", {}).get("inboxEvents", {}).get("type") == "MESSAGE_ADDED":
            received.setdefault(key, time.time())
        elif msg["type"] in ("error", "complete"):
            print(f"  subscriber {key} ended: {msg}")
            return


async def settle_rss(pid: int, seconds: float = 2.0) -> int:
    await asyncio.sleep(seconds)
    return proc_status(pid)["VmRSS"]


async def one_mode(server: SandboxServer, mode: str, count: int, batch: int) -> dict[str, Any]:
    async with deployment(mode, server) as (dep, stack):
        pid = dep.api.pid
        tenant = await seed_tenant(dep.settings, [CONTACT])
        mailbox = f"subs-{uuid.uuid4().hex[:6]}@outlook.bench.example"
        await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)
        url = stack.base_url.replace("http://", "ws://") + "/graphql"
        out: dict[str, Any] = {"before": await settle_rss(pid)}

        sockets: list[ClientConnection] = []
        received: dict[int, float] = {}
        listeners: list[asyncio.Task[None]] = []
        try:
            sockets.append(await open_subscription(url, tenant.token, INBOX_EVENTS))
            listeners.append(asyncio.create_task(listen(sockets[0], received, 0)))
            out["one"] = await settle_rss(pid)
            started = time.monotonic()
            while len(sockets) < count:
                n = min(batch, count - len(sockets))
                sockets += await asyncio.gather(*(open_subscription(url, tenant.token, INBOX_EVENTS) for _ in range(n)))
            out["open_seconds"] = time.monotonic() - started
            listeners += [asyncio.create_task(listen(ws, received, i)) for i, ws in enumerate(sockets) if i]
            out["with_all"] = await settle_rss(pid, 3.0)

            cpu0 = cpu_seconds(pid)
            called = time.time()
            response = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
                "from": {"address": CONTACT, "name": "Ann"}, "subject": "to everyone", "text": "Hello, subscribers."})
            response.raise_for_status()
            deadline = time.monotonic() + 60
            while len(received) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            out["received"] = len(received)
            out["fanout_ms"] = (max(received.values()) - called) * 1000 if received else None
            out["first_ms"] = (min(received.values()) - called) * 1000 if received else None
            out["fanout_cpu"] = cpu_seconds(pid) - cpu0
            out["after_event"] = await settle_rss(pid)
            out["hwm"] = proc_status(pid)["VmHWM"]
            out["threads"] = proc_status(pid)["Threads"]
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
            await asyncio.gather(*listeners, return_exceptions=True)
        out["after_close"] = await settle_rss(pid)
    return out


def report(mode: str, count: int, r: dict[str, Any]) -> None:
    per_sub = (r["with_all"] - r["one"]) / max(1, count - 1)
    verdict = "meets" if max(r["with_all"], r["after_event"], r["hwm"]) < TARGET_MB * 1024 else "MISSES"
    print(f"\n{mode}: one `emailsync serve` process, {count} inboxEvents subscriptions")
    print(f"  VmRSS before subscriptions:            {mb(r['before']):>10}")
    print(f"  VmRSS with 1 subscription (warm):      {mb(r['one']):>10}")
    print(f"  VmRSS with {count} subscriptions:{'':{8 - len(str(count))}} {mb(r['with_all']):>10}   "
          f"({per_sub:.1f} kB per subscription; opened in {r['open_seconds']:.1f} s)")
    print(f"  VmRSS after one event fanned out:      {mb(r['after_event']):>10}")
    print(f"  VmHWM (peak) of the API process:       {mb(r['hwm']):>10}   ({verdict} < {TARGET_MB} MB)")
    print(f"  VmRSS after all closed:                {mb(r['after_close']):>10}")
    print(f"  event received by {r['received']} / {count} subscribers; first after "
          f"{r['first_ms'] or float('nan'):.0f} ms, last after {r['fanout_ms'] or float('nan'):.0f} ms "
          f"(API CPU for the fan-out {r['fanout_cpu']:.2f} s, {r['threads']} threads)")


async def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.subscribers * 2 + 256  # this process and the API child (which inherits the limit)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    print(f"subscriber memory; {machine_conditions()}")
    with SandboxServer() as server:
        for mode in args.modes.split(","):
            report(mode, args.subscribers, await one_mode(server, mode, args.subscribers, args.batch))
    print(f"\nafter the run: {machine_conditions()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50, help="subscriptions opened concurrently")
    parser.add_argument("--modes", default="sqlite-embedded")
    args = parser.parse_args()
    for m in args.modes.split(","):
        if m not in MODES:
            parser.error(f"unknown mode {m}; choose from {MODES}")
    asyncio.run(main(args))
