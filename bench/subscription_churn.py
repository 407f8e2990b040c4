"""Figure: does one API process give back what subscriptions took? Resident memory of an
``emailsync serve`` process across repeated cycles of opening N ``inboxEvents``
subscriptions, delivering one event to all of them, and closing them all.

How: as ``bench/subscribers_memory.py`` (the API a subprocess, the sandbox in this process,
a tenant with an Outlook mailbox connected through the real OAuth flow). Each cycle opens N
graphql-transport-ws clients (each its own TCP connection), has a contact's mail arrive
(webhook, sync, publish) and waits until every subscriber got MESSAGE_ADDED, then closes
every socket and lets the process settle. VmRSS (/proc/PID/status) is read with all open,
after the event, and after the close.

Reading it: a leak shows as "after close" rising cycle after cycle by about the same step;
allocator reuse shows as a rise in the first cycle (arenas the allocator keeps) and a
plateau afterwards.

    python bench/subscription_churn.py [--subscribers 500] [--cycles 4] [--mode sqlite-embedded]
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

import itertools

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
INBOX_EVENTS = "subscription { inboxEvents { type occurredAt message { id subject } thread { id subject } } }"


async def first_event(ws: ClientConnection) -> bool:
    """True once MESSAGE_ADDED arrived (a new thread's THREAD_CREATED may come first)."""
    async for raw in ws:
        msg = json.loads(raw)
        if msg["type"] == "next" and msg["payload"].get("data", {}).get("inboxEvents", {}).get("type") == "MESSAGE_ADDED":
            return True
        if msg["type"] in ("error", "complete"):
            return False
    return False


async def settle_rss(pid: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return proc_status(pid)["VmRSS"]


async def cycle(url: str, token: str, stack: Any, mailbox: str, pid: int, count: int, batch: int,
                settle: float) -> dict[str, Any]:
    sockets: list[ClientConnection] = []
    out: dict[str, Any] = {}
    try:
        while len(sockets) < count:
            n = min(batch, count - len(sockets))
            sockets += await asyncio.gather(*(open_subscription(url, token, INBOX_EVENTS) for _ in range(n)))
        out["open"] = await settle_rss(pid, settle)
        waiting = [asyncio.create_task(first_event(ws)) for ws in sockets]
        await asyncio.sleep(0.5)  # every server-side stream subscribed to the bus
        cpu0, started = cpu_seconds(pid), time.monotonic()
        response = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
            "from": {"address": CONTACT, "name": "Ann"}, "subject": "churn", "text": "Hello again."})
        response.raise_for_status()
        done, pending = await asyncio.wait(waiting, timeout=60)
        out["received"] = sum(1 for t in done if not t.cancelled() and t.exception() is None and t.result())
        out["event_ms"] = (time.monotonic() - started) * 1000
        out["event_cpu"] = cpu_seconds(pid) - cpu0
        for task in pending:
            task.cancel()
        out["event"] = await settle_rss(pid, settle)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    out["closed"] = await settle_rss(pid, settle)
    return out


async def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.subscribers * 2 + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    print(f"subscription churn; {machine_conditions()}")
    with SandboxServer() as server:
        async with deployment(args.mode, server) as (dep, stack):
            pid = dep.api.pid
            tenant = await seed_tenant(dep.settings, [CONTACT])
            mailbox = f"churn-{uuid.uuid4().hex[:6]}@outlook.bench.example"
            await connect_mailbox(stack, tenant, "OUTLOOK", mailbox)
            url = stack.base_url.replace("http://", "ws://") + "/graphql"
            start = await settle_rss(pid, args.settle)
            print(f"\n{args.mode}: {args.cycles} cycles of {args.subscribers} inboxEvents subscriptions "
                  f"(open, one event, close)")
            print(f"  VmRSS before the first cycle: {mb(start)}")
            closed: list[int] = []
            for i in range(1, args.cycles + 1):
                r = await cycle(url, tenant.token, stack, mailbox, pid, args.subscribers, args.batch, args.settle)
                closed.append(r["closed"])
                print(f"  cycle {i}: open {mb(r['open']):>10}  after event {mb(r['event']):>10}  "
                      f"after close {mb(r['closed']):>10}   event to {r['received']}/{args.subscribers} in "
                      f"{r['event_ms']:.0f} ms, API CPU {r['event_cpu']:.2f} s")
            steps = [b - a for a, b in itertools.pairwise(closed)]
            print(f"  after-close growth per cycle after the first: "
                  f"{', '.join(f'{s / 1024:+.1f} MB' for s in steps) or 'n/a'}")
            print(f"  VmHWM (peak): {mb(proc_status(pid)['VmHWM'])}")
    print(f"\nafter the run: {machine_conditions()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50, help="subscriptions opened concurrently")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait before each VmRSS reading")
    parser.add_argument("--mode", default="sqlite-embedded", choices=MODES)
    asyncio.run(main(parser.parse_args()))
