"""Delta sync against the sandbox's Graph: full and incremental rounds, quirks, limits."""

from __future__ import annotations

import asyncio
import base64

import pytest

from sync_engine.domain import ChangeKind, CursorExpiredError, Folder, NotFoundError


async def run_sync(client, cursor):
    return [page async for page in client.sync(cursor)]


def changes_of(pages):
    return [c for p in pages for c in p.changes]


async def test_full_then_incremental_sync(connected, world, control):
    account, client = connected
    address = account.address
    arrived = [
        world.inbound(address, subject=f"Question {i}", text=f"body {i}",
                      **{"from": {"address": "Client@Example.COM", "name": "A Client"}})
        for i in range(13)
    ]
    sent = world.owner_sends(address, to=["client@example.com"], subject="Re: Question 0", reply_to=arrived[0]["id"],
                             text="answer")

    pages = await run_sync(client, None)
    # Sent Items first, then 13 inbox messages with a page size of 10: two inbox pages.
    assert [len(p.changes) for p in pages] == [1, 10, 3]
    assert [p.complete for p in pages] == [False, False, True]
    assert pages[1].cursor["folders"]["inbox"]["next"] and pages[2].cursor["folders"]["inbox"]["delta"]
    full = changes_of(pages)
    assert {c.kind for c in full} == {ChangeKind.UPSERT}
    by_id = {c.provider_id: c.message for c in full}
    assert set(by_id) == {m["id"] for m in arrived} | {sent["id"]}  # immutable ids
    first = by_id[arrived[0]["id"]]
    assert first.folder is Folder.INBOX
    assert first.subject == "Question 0" and first.text == "body 0"
    assert first.sender.normalized == "client@example.com"
    assert first.message_id == arrived[0]["internetMessageId"]
    assert first.thread_key == arrived[0]["conversationId"]
    reply = by_id[sent["id"]]
    assert reply.folder is Folder.SENT
    assert reply.thread_key == arrived[0]["conversationId"]
    assert reply.in_reply_to == arrived[0]["internetMessageId"]
    assert arrived[0]["internetMessageId"] in reply.references

    # Incremental: one read in Outlook, one deleted, one new.
    cursor = pages[-1].cursor
    control.patch(f"/mailboxes/{address}/messages/{arrived[1]['id']}", json={"isRead": True})
    control.delete(f"/mailboxes/{address}/messages/{arrived[2]['id']}")
    new = world.inbound(address, subject="Another", text="more")
    pages = await run_sync(client, cursor)
    assert pages[-1].complete
    got = {(c.provider_id, c.kind) for c in changes_of(pages)}
    assert (arrived[2]["id"], ChangeKind.REMOVED) in got
    assert (new["id"], ChangeKind.UPSERT) in got
    read = next(c for c in changes_of(pages) if c.provider_id == arrived[1]["id"])
    assert (read.message.is_read if read.kind is ChangeKind.UPSERT else read.is_read) is True
    assert len(changes_of(pages)) == 3

    # Nothing changed: an incremental round is empty but still moves the cursor.
    again = await run_sync(client, pages[-1].cursor)
    assert changes_of(again) == [] and again[-1].complete


async def test_string_booleans_in_delta_updates(connected, world, control):
    account, client = connected
    msg = world.inbound(account.address, subject="s", text="t")
    cursor = (await run_sync(client, None))[-1].cursor
    control.patch("/config", json={"delta_string_booleans": True})
    control.patch(f"/mailboxes/{account.address}/messages/{msg['id']}", json={"isRead": True})
    (change,) = changes_of(await run_sync(client, cursor))
    assert change.provider_id == msg["id"]
    assert (change.message.is_read if change.message else change.is_read) is True


async def test_replayed_delta_page_is_harmless(connected, world, control):
    account, client = connected
    for i in range(3):
        world.inbound(account.address, subject=f"m{i}", text="x")
    control.post(f"/mailboxes/{account.address}/replay-next-delta")
    pages = await run_sync(client, None)
    ids = [c.provider_id for c in changes_of(pages)]
    assert len(set(ids)) == 3  # every message seen (maybe twice: the engine dedupes)


async def test_expired_cursor_raises_then_full_resync_works(connected, world, control):
    account, client = connected
    world.inbound(account.address, subject="before", text="x")
    cursor = (await run_sync(client, None))[-1].cursor
    assert control.post(f"/mailboxes/{account.address}/expire-cursors").status_code == 200
    with pytest.raises(CursorExpiredError):
        await run_sync(client, cursor)
    pages = await run_sync(client, None)
    assert [c.message.subject for c in changes_of(pages)] == ["before"]


async def test_429_retry_after_is_honoured(connected, world, control, sleeps):
    account, client = connected
    world.inbound(account.address, subject="throttled", text="x")
    control.delete("/requests")
    world.fault(status=429, path="/mailFolders/inbox/messages/delta", retry_after="1.5", count=1)
    pages = await run_sync(client, None)
    assert sleeps.calls == [1.5]  # the sandbox's Retry-After, waited once before the retry
    assert [c.message.subject for c in changes_of(pages)] == ["throttled"]
    statuses = [r["status"] for r in world.requests(None, "/mailFolders/inbox/messages/delta")]
    assert statuses == [429, 200]


async def test_attachments_listed_then_fetched(connected, world):
    account, client = connected
    pdf = b"%PDF-1.4 tiny test pdf\n%%EOF\n"
    msg = world.inbound(
        account.address,
        subject="with file",
        html='<p>see attached</p><img src="cid:logo@x">',
        attachments=[
            {"filename": "quote.pdf", "content_type": "application/pdf", "content_base64": base64.b64encode(pdf).decode()},
            {"filename": "logo.png", "content_type": "image/png", "content_base64": base64.b64encode(b"\x89PNG\r\n").decode(),
             "content_id": "logo@x", "inline": True},
        ],
    )
    (change,) = changes_of(await run_sync(client, None))
    atts = {a.filename: a for a in change.message.attachments}
    assert set(atts) == {"quote.pdf", "logo.png"}
    assert atts["quote.pdf"].size == len(pdf) and atts["quote.pdf"].content is None
    assert atts["quote.pdf"].content_type == "application/pdf" and not atts["quote.pdf"].is_inline
    assert atts["logo.png"].is_inline
    content = await client.fetch_attachment(msg["id"], atts["quote.pdf"].provider_attachment_id)
    assert content == pdf


async def test_get_message_and_set_read(connected, world):
    account, client = connected
    msg = world.inbound(account.address, subject="read me", text="x")
    got = await client.get_message(msg["id"])
    assert (got.provider_id, got.folder, got.is_read, got.subject) == (msg["id"], Folder.INBOX, False, "read me")
    await client.set_read(msg["id"], True)
    assert [m["isRead"] for m in world.messages(account.address, "inbox")] == [True]
    await client.set_read(msg["id"], False)
    assert [m["isRead"] for m in world.messages(account.address, "inbox")] == [False]
    sent = world.owner_sends(account.address, to=["x@example.com"], subject="out", text="y")
    assert (await client.get_message(sent["id"])).folder is Folder.SENT
    with pytest.raises(NotFoundError):
        await client.get_message("AAMkAGnonexistent=")


async def test_mailbox_of_several_hundred_messages_streams(connected, world):
    account, _ = connected
    production_like = world.build_provider(graph_page_size=200)
    client = production_like.client(account.tokens, lambda tokens: None)
    store = world.sandbox.sandbox.store  # seeding through HTTP would dominate the test's time
    from sandbox import mailflow
    from sandbox.mailflow import Outgoing
    from sandbox.store import Address

    mailbox = store.mailbox(account.address)
    for i in range(600):
        mailflow.receive(store, mailbox, Outgoing(from_=Address("bulk@example.com", "Bulk"), to=[mailflow.owner(mailbox)],
                                                  subject=f"bulk {i}", text="hello " * 50))
    count = 0
    pages = 0
    async for page in client.sync(None):
        count += len(page.changes)
        pages += 1
    await client.aclose()
    production_like.auth.close()
    # Pages of the configured size, not one big answer (the import rate is measured in bench/).
    assert count == 600 and pages == 4  # Sent Items, then 3 inbox pages of <= 200


async def _until(fact, attempts: int = 1000) -> None:
    for _ in range(attempts):
        if fact():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def test_the_next_page_is_fetched_while_the_engine_stores_this_one(connected, world):
    """Graph is asked for the next page as soon as a page is handed over, before the engine
    asks for it: the import then runs at Graph's pace, not Graph's plus the database's."""
    account, client = connected
    world.inbound_bulk(account.address, [{"subject": f"m {i}", "text": "x"} for i in range(25)])
    pages = client.sync(None)
    sizes = []
    async for page in pages:
        sizes.append(len(page.changes))
        if len(sizes) == 2:  # Sent Items (empty), then the first inbox page of 10
            # The inbox's second page is requested without the engine asking for it.
            await _until(lambda: len([r for r in world.requests(account.address) if "delta" in r["path"]]) == 3)
    assert sizes == [0, 10, 10, 5]


async def test_stopping_mid_folder_drops_the_page_fetched_ahead(connected, world):
    account, client = connected
    world.inbound_bulk(account.address, [{"subject": f"m {i}", "text": "x"} for i in range(25)])
    pages = client.sync(None)
    await anext(pages)  # Sent Items
    first = await anext(pages)  # the first inbox page; the second is on its way
    assert len(first.changes) == 10
    await pages.aclose()  # the engine stopped (lease lost, shutdown): nothing left running
    ahead = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
             and "_page" in repr(t.get_coro())]
    assert all(t.cancelling() for t in ahead), ahead
