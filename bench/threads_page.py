"""Figure: the inbox read path — requests/s and server CPU per request for the 50 most recent
threads with their contact and last message (DESIGN.md section 5).

Setup as in DESIGN.md: PostgreSQL, one sub-account with 20,000 threads / 100,000 messages,
32 concurrent clients over loopback HTTP against one `emailsync serve` process. Three runs in
the same session, so the machine's noise hits all of them alike:
  - /healthz (the floor: Starlette + uvicorn + the client itself),
  - the GraphQL query with the response cache (a realistic inbox: reads repeat between changes),
  - the GraphQL query with the cache disabled (EMAILSYNC_RESPONSE_CACHE=false).
Server CPU per request comes from the server process's CPU time (psutil-free: /proc).
With ``--rounds N`` the three runs repeat N times on the same seeded database (interleaved,
so background load spreads over all of them) and the medians are printed at the end.

    python bench/threads_page.py [--seconds 10] [--clients 32] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.auth import mint_dev_token
from db.engine import create_engine
from db.models import Contact, Message, SubAccount, Thread, User
from sync_engine.settings import Settings
from tests.support.databases import POSTGRES, create_database, drop_database

QUERY = """{ threads(first: 50) { edges { node { id subject snippet lastMessageAt unreadCount messageCount
  contact { id email name } lastMessage { id direction subject snippet sentAt from { email name } } } } } }"""


async def seed(url: str, threads: int = 20_000, per_thread: int = 5) -> tuple[uuid.UUID, uuid.UUID]:
    engine = create_engine(url)
    sub, user = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(insert(SubAccount), [{"id": sub, "agency_id": "bench", "name": "Bench", "labs_two_way_sync": True,
                                                 "bcc_sync_address": f"sync-{sub.hex[:8]}@bcc.bench", "created_at": now}])
        await conn.execute(insert(User), [{"id": user, "sub_account_id": sub, "email": "u@bench.example",
                                           "email_normalized": "u@bench.example", "role": "admin", "created_at": now}])
        contacts = [{"id": uuid.uuid4(), "sub_account_id": sub, "email": f"c{i}@client.example",
                     "email_normalized": f"c{i}@client.example", "name": f"Contact {i}", "source": "crm", "created_at": now}
                    for i in range(2_000)]
        await conn.execute(insert(Contact), contacts)
        for start in range(0, threads, 2_000):
            thread_rows, message_rows = [], []
            for t in range(start, min(threads, start + 2_000)):
                tid, last = uuid.uuid4(), now - timedelta(minutes=t)
                thread_rows.append({"id": tid, "sub_account_id": sub, "user_id": user, "contact_id": contacts[t % 2_000]["id"],
                                    "subject": f"Thread {t}", "snippet": "latest words", "last_message_at": last,
                                    "message_count": per_thread, "unread_count": 1, "created_at": now})
                for m in range(per_thread):
                    message_rows.append({"id": uuid.uuid4(), "sub_account_id": sub, "thread_id": tid, "direction": "inbound",
                                         "origin": "mailbox", "status": "synced", "subject": f"Thread {t}",
                                         "from_email": contacts[t % 2_000]["email"], "to_addresses": [], "cc_addresses": [],
                                         "bcc_addresses": [], "text": "hello " * 40, "snippet": "hello", "is_read": m < per_thread - 1,
                                         "deleted_in_mailbox": False, "sent_at": last - timedelta(minutes=per_thread - 1 - m),
                                         "created_at": now})
            await conn.execute(insert(Thread), thread_rows)
            await conn.execute(insert(Message), message_rows)
    await engine.dispose()
    return sub, user


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(port: int, token: str, pid: int, seconds: float, clients: int, graphql: bool) -> tuple[float, float]:
    done = 0
    stop = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30,
                                 limits=httpx.Limits(max_connections=clients)) as http:
        async def one() -> None:
            nonlocal done
            while time.monotonic() < stop:
                if graphql:
                    r = await http.post("/graphql", json={"query": QUERY})
                    assert r.status_code == 200 and len(r.json()["data"]["threads"]["edges"]) == 50
                else:
                    r = await http.get("/healthz")
                    assert r.status_code == 200
                done += 1

        await asyncio.gather(*(one() for _ in range(clients)))  # warm-up round shares the same loop
        cpu0, t0, done = cpu_seconds(pid), time.monotonic(), 0
        stop = time.monotonic() + seconds
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    return done / elapsed, cpu / max(done, 1) * 1000


def serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "emailsync.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


async def main(seconds: float, clients: int, rounds: int = 1) -> None:
    url, name = await create_database(POSTGRES, Path("."))  # migrated, empty
    try:
        started = time.monotonic()
        sub, user = await seed(url)
        print(f"seeded 20,000 threads / 100,000 messages in {time.monotonic() - started:.0f}s")
        key = Fernet.generate_key().decode()
        settings = Settings(database_url=url, encryption_keys=key)
        token = mint_dev_token(settings, user_id=str(user), sub_account_id=str(sub), role="admin")
        base_env = {**os.environ, "EMAILSYNC_DATABASE_URL": url, "EMAILSYNC_ENCRYPTION_KEYS": key}
        base_env.pop("EMAILSYNC_REDIS_URL", None)
        print(f"{clients} clients, {seconds:.0f}s per run, {rounds} round(s)")
        runs = (("/healthz (floor)", False, "true"), ("threads, response cache on", True, "true"),
                ("threads, response cache off", True, "false"))
        results: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in runs}
        for _ in range(rounds):
            for label, graphql, cache in runs:
                port = 18000 + int(uuid.uuid4().int % 1000)
                proc = serve({**base_env, "EMAILSYNC_RESPONSE_CACHE": cache}, port)
                try:
                    rps, cpu_ms = await load(port, token, proc.pid, seconds, clients, graphql)
                finally:
                    proc.terminate()
                    proc.wait(timeout=10)
                results[label].append((rps, cpu_ms))
                print(f"  {label:30s} {rps:8,.0f} req/s   {cpu_ms:6.2f} ms server CPU per request")
        if rounds > 1:
            print(f"medians of {rounds} rounds:")
            for label, figures in results.items():
                rps = statistics.median(r for r, _ in figures)
                cpu_ms = statistics.median(c for _, c in figures)
                print(f"  {label:30s} {rps:8,.0f} req/s   {cpu_ms:6.2f} ms server CPU per request")
    finally:
        await drop_database(name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.clients, max(1, args.rounds)))
