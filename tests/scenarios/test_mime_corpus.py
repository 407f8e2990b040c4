"""Real-world and broken MIME, end to end: nothing that reaches a mailbox goes missing.

Every message of ``tests/samples/mime-corpus`` and the ``.eml`` samples of
``tests/samples/provider-samples`` (origins in their SOURCES.md) arrives as raw MIME in
a sandbox mailbox (Outlook and Gmail), from senders who are contacts of the
sub-account; the mailbox is then connected. Each message must end up accounted for:
synced (a CRM message holds its provider id) or skipped with a reason (a sync skip,
visible through ``syncSkips``). A message the provider itself refuses at delivery (as
Microsoft and Google refuse mail without a valid From) is accounted for by that refusal.
The corpus holds broken boundaries, bad charsets, encoded words, 8-bit headers, nested
messages, huge headers, refused and allowed attachments, and Message-IDs shared by
several messages: a shared Message-ID must not hide any of them.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from db.models import Message, SyncSkip
from tests.support.flows import connect_mailbox
from tests.support.stack import Stack, Tenant

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CORPUS = sorted([*(SAMPLES / "mime-corpus").glob("*.eml"), *(SAMPLES / "provider-samples").glob("*.eml")])

SKIPS = """query($after: String) { syncSkips(first: 100, after: $after) {
  edges { node { reason detail subject fromEmail } } pageInfo { hasNextPage endCursor } } }"""
THREADS = """query($after: String) { threads(first: 100, after: $after) {
  edges { node { messageCount } } pageInfo { hasNextPage endCursor } } }"""


def test_the_corpus_is_varied_and_modest() -> None:
    """The corpus this scenario relies on is there, shares Message-IDs, and stays small."""
    assert len(CORPUS) >= 40, len(CORPUS)
    assert sum(p.stat().st_size for p in CORPUS) < 2_000_000
    ids: dict[bytes, list[str]] = {}
    for path in CORPUS:
        for line in path.read_bytes().splitlines():
            if line.lower().startswith(b"message-id:") and line[11:].strip():
                ids.setdefault(line[11:].strip(), []).append(path.name)
                break
    assert any(len(names) > 1 for names in ids.values()), "no two corpus messages share a Message-ID"


@pytest.mark.parametrize("provider", ["OUTLOOK", "GMAIL"])
async def test_every_corpus_message_is_synced_or_skipped_with_a_reason(stack: Stack, provider: str) -> None:
    mailbox = f"corpus-{uuid.uuid4().hex[:8]}@biz.example"
    created = await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": provider.lower(), "address": mailbox,
                                                                    "name": "Owner"})
    assert created.status_code in (200, 201), created.text

    delivered: dict[str, dict[str, Any]] = {}  # corpus file -> the provider's message
    refused: dict[str, str] = {}
    for path in CORPUS:
        raw = base64.b64encode(path.read_bytes()).decode("ascii")
        response = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={"raw": raw})
        if response.status_code == 201:
            delivered[path.name] = response.json()
        else:  # refused at delivery, with the provider's reason
            assert 400 <= response.status_code < 500 and response.json().get("error"), (path.name, response.text)
            refused[path.name] = response.json()["error"]
    assert len(delivered) + len(refused) == len(CORPUS)
    assert len(delivered) >= 35, refused

    # Every sender the mailbox shows is a contact, so every message is meant to sync.
    senders = {m["from"]["address"].lower() for m in delivered.values() if m.get("from")}
    tenant = await stack.seed_tenant(name="Corpus", user_email=mailbox, contacts=tuple(sorted(senders)))
    await connect_mailbox(stack, tenant, provider, mailbox)

    wanted = {m["id"]: name for name, m in delivered.items()}

    async def accounted() -> tuple[dict[str, Any], dict[str, Any]] | None:
        synced, skipped = await _outcomes(stack, tenant, list(wanted))
        return (synced, skipped) if len(synced) + len(skipped) == len(wanted) else None

    try:
        synced, skipped = await stack.wait_for(accounted, timeout=90, interval=0.25, what="every corpus message")
    except AssertionError:
        synced, skipped = await _outcomes(stack, tenant, list(wanted))
        missing = sorted(name for pid, name in wanted.items() if pid not in synced and pid not in skipped)
        raise AssertionError(f"silently missing after the sync: {missing}") from None

    assert not set(synced) & set(skipped)
    assert all(s.reason for s in skipped.values())
    # Messages sharing a Message-ID are each there (none hides another).
    by_header: dict[str, int] = {}
    for row in synced.values():
        if row.message_id_header:
            by_header[row.message_id_header] = by_header.get(row.message_id_header, 0) + 1
    assert max(by_header.values()) > 1, by_header

    # As a client sees it: every skip with its reason, every synced message in a thread.
    api_skips = await _all_pages(stack, tenant, SKIPS, "syncSkips")
    assert sorted(s["reason"] for s in api_skips) == sorted(s.reason for s in skipped.values())
    threads = await _all_pages(stack, tenant, THREADS, "threads")
    assert sum(t["messageCount"] for t in threads) == len(synced)


async def _outcomes(stack: Stack, tenant: Tenant, provider_ids: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    async with stack.runtime.sessions() as session:
        messages = await session.scalars(select(Message).where(Message.sub_account_id == tenant.sub_account_id,
                                                               Message.provider_message_id.in_(provider_ids)))
        skips = await session.scalars(select(SyncSkip).where(SyncSkip.sub_account_id == tenant.sub_account_id,
                                                             SyncSkip.provider_message_id.in_(provider_ids)))
        return ({m.provider_message_id: m for m in messages}, {s.provider_message_id: s for s in skips})


async def _all_pages(stack: Stack, tenant: Tenant, query: str, field: str) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await stack.graphql(query, {"after": after}, token=tenant.token))[field]
        nodes += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]
