"""Figure: Outlook import rate (messages/s) of the adapter's delta sync against the sandbox.

DESIGN.md section 5 target: Graph >= 500 messages/s. The sandbox answers from memory over
HTTPS on loopback, so this measures our side (HTTP client, JSON, mapping), not Microsoft.
Prints the median of several runs and the rate of a bare JSON fetch of the same pages
(the floor of the chain) as a same-run baseline.

    python bench/outlook_import_rate.py [--messages 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import mailflow
from sandbox.mailflow import Outgoing
from sandbox.server import SandboxServer
from sandbox.store import Address
from sync_engine.providers.outlook import build_outlook_provider
from sync_engine.settings import Settings
from tests.support.adapters import sign_in as sign_in_through_browser

MAILBOX = "bench@outlook.example"


async def sign_in(provider, server: SandboxServer):  # type: ignore[no-untyped-def]
    return await sign_in_through_browser(provider, server.ca_file, MAILBOX, "https://app.example/oauth/outlook/callback")


async def one_run(client) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    count = sum([len(page.changes) async for page in client.sync(None)])
    return count / (time.perf_counter() - started)


async def baseline_run(server: SandboxServer, token: str) -> float:
    """Fetch the same delta pages as raw JSON, nothing else."""
    headers = {"Authorization": f"Bearer {token}", "Prefer": 'odata.maxpagesize=200, IdType="ImmutableId"'}
    url: str | None = f"{server.graph_base_url}/me/mailFolders/inbox/messages/delta"
    count = 0
    started = time.perf_counter()
    async with httpx.AsyncClient(verify=server.ssl_context(), headers=headers) as http:
        while url:
            body = (await http.get(url)).json()
            count += len(body["value"])
            url = body.get("@odata.nextLink")
    return count / (time.perf_counter() - started)


async def main(messages: int, runs: int) -> None:
    with SandboxServer() as server:
        control = server.control_client()
        control.post("/mailboxes", json={"provider": "outlook", "address": MAILBOX, "name": "Bench"})
        store = server.sandbox.store
        box = store.mailbox(MAILBOX)
        for i in range(messages):
            mailflow.receive(store, box, Outgoing(from_=Address("sender@example.com", "Sender"), to=[mailflow.owner(box)],
                                                  subject=f"message {i}", text="hello " * 60))
        settings = Settings(microsoft_authority=server.authority, graph_base_url=server.graph_base_url,
                            ca_bundle=server.ca_file, graph_page_size=200)
        provider = build_outlook_provider(settings)
        account = await sign_in(provider, server)

        async def noop(_tokens):  # type: ignore[no-untyped-def]
            return None

        ours, floor = [], []
        for _ in range(runs):
            client = provider.client(account.tokens, noop)
            ours.append(await one_run(client))
            await client.aclose()
            floor.append(await baseline_run(server, account.tokens.access_token))
        print(f"outlook import, {messages} messages, {runs} runs")
        print(f"  adapter sync:      median {statistics.median(ours):,.0f} msg/s (min {min(ours):,.0f}, max {max(ours):,.0f})")
        print(f"  raw JSON baseline: median {statistics.median(floor):,.0f} msg/s")
        print(f"  adapter / baseline: {statistics.median(ours) / statistics.median(floor):.2f}")
        provider.auth.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.runs))
