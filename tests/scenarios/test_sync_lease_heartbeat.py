"""A live sync pass keeps its mailbox however slow a page is: its short lease is renewed
by a heartbeat, so the resume safety net never starts a second pass beside it (which
would fetch the same pages again and make the first one give up)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from db.models import Message
from tests.support.flows import START, app_page, finish_sign_in
from tests.support.stack import Stack

LEASE_SECONDS = 2.0
# Longer than the lease plus a whole period of resume_pending_syncs (10 s): without the
# heartbeat the lease is certainly lapsed at one of its ticks.
SLOW_PAGE_SECONDS = 15.0


@pytest.mark.stack_settings(sync_lease_seconds=LEASE_SECONDS, graph_page_size=10)
async def test_a_slow_page_does_not_let_a_second_pass_take_the_mailbox(stack: Stack) -> None:
    contact = f"slow-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Slow Pages", contacts=(contact,))
    mailbox = tenant.user_email
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": "outlook", "address": mailbox, "name": "Owner"})
    specs = [{"from": contact, "to": [mailbox], "subject": f"Offer {i}", "text": f"message {i}"} for i in range(25)]
    assert (await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound/bulk",
                                     json={"messages": specs})).status_code == 201
    # The Inbox's second delta page (the first with a skiptoken) answers only after SLOW_PAGE_SECONDS.
    fault = await stack.sandbox.post("/_sandbox/faults", json={"path": "skiptoken", "method": "GET",
                                                               "status": 0, "delay_ms": int(SLOW_PAGE_SECONDS * 1000),
                                                               "count": 1})
    assert fault.status_code == 201, fault.text
    await stack.sandbox.delete("/_sandbox/requests")
    data = await stack.graphql(START, {"input": {"provider": "OUTLOOK", "redirectUri": app_page(stack),
                                                 "loginHint": mailbox}}, token=tenant.token)
    await finish_sign_in(stack, tenant, data["startEmailConnection"]["authorizationUrl"], app_page(stack))

    async def imported() -> bool:
        async with stack.runtime.sessions() as session:
            return await session.scalar(select(func.count(Message.id)).where(
                Message.sub_account_id == tenant.sub_account_id)) == 25

    await stack.wait_for(imported, timeout=SLOW_PAGE_SECONDS + 30, interval=0.2, what="the import")

    async def next_pages() -> list[dict[str, object]] | None:
        """The Inbox's pages after its first, once the slow one has been answered."""
        log = (await stack.sandbox.get("/_sandbox/requests", params={"mailbox": mailbox, "path": "delta"})).json()
        pages = [r for r in log if "skiptoken" in r["query"]]
        return pages if any(r["durationMs"] >= SLOW_PAGE_SECONDS * 1000 for r in pages) else None

    pages = await stack.wait_for(next_pages, timeout=SLOW_PAGE_SECONDS + 30, interval=0.2, what="the slow page's answer")
    # One pass fetched each page once; a second pass would have fetched the slow page again.
    queries = [r["query"] for r in pages]
    assert len(set(queries)) == len(queries) == 2, queries
    async with stack.runtime.sessions() as session:
        subjects = list(await session.scalars(select(Message.subject).where(
            Message.sub_account_id == tenant.sub_account_id)))
    assert sorted(subjects) == sorted(f"Offer {i}" for i in range(25))
