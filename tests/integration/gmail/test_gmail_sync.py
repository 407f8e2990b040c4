"""Full pass and history increments against the sandbox's Gmail: pages, cursors,
expired history, quota 429s, quota units per message, attachments, read flags."""

from __future__ import annotations

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
    arrived = [world.inbound(address, subject=f"Question {i}", text=f"body {i}",
                             **{"from": {"address": "Client@Example.COM", "name": "A Client"}}) for i in range(3)]
    sent = world.owner_sends(address, to=["client@example.com"], subject="Re: Question 0",
                             reply_to=arrived[0]["id"], text="answer")

    pages = await run_sync(client, None)
    assert pages[-1].complete and not any(p.complete for p in pages[:-1])
    full = changes_of(pages)
    assert {c.kind for c in full} == {ChangeKind.UPSERT}
    by_id = {c.provider_id: c.message for c in full}
    assert set(by_id) == {m["id"] for m in arrived} | {sent["id"]}
    first = by_id[arrived[0]["id"]]
    assert first.folder is Folder.INBOX and first.subject == "Question 0"
    assert first.text.strip() == "body 0"
    assert first.sender.normalized == "client@example.com" and first.sender.name == "A Client"
    assert first.message_id == arrived[0]["internetMessageId"]
    assert first.thread_key == arrived[0]["conversationId"]
    assert first.is_read is False
    reply = by_id[sent["id"]]
    assert reply.folder is Folder.SENT and reply.is_read is True
    assert reply.thread_key == arrived[0]["conversationId"]  # Gmail threads the owner's reply
    assert reply.in_reply_to == arrived[0]["internetMessageId"]
    assert arrived[0]["internetMessageId"] in reply.references
    cursor = pages[-1].cursor
    assert set(cursor) == {"v", "history_id"}

    # Incremental: one read in Gmail, one deleted for good, one trashed, one new.
    control.patch(f"/mailboxes/{address}/messages/{arrived[1]['id']}", json={"isRead": True})
    control.delete(f"/mailboxes/{address}/messages/{arrived[2]['id']}")
    control.delete(f"/mailboxes/{address}/messages/{arrived[0]['id']}", params={"to_trash": "true"})
    new = world.inbound(address, subject="Another", text="more")
    pages = await run_sync(client, cursor)
    assert pages[-1].complete
    got = {c.provider_id: c for c in changes_of(pages)}
    assert got[arrived[2]["id"]].kind is ChangeKind.REMOVED
    assert got[arrived[0]["id"]].kind is ChangeKind.REMOVED
    assert got[new["id"]].kind is ChangeKind.UPSERT and got[new["id"]].message.subject == "Another"
    read = got[arrived[1]["id"]]
    assert (read.kind, read.is_read) == (ChangeKind.READ_STATE, True)
    assert len(got) == 4
    assert int(pages[-1].cursor["history_id"]) > int(cursor["history_id"])

    # Unread again in Gmail.
    control.patch(f"/mailboxes/{address}/messages/{arrived[1]['id']}", json={"isRead": False})
    (change,) = changes_of(await run_sync(client, pages[-1].cursor))
    assert (change.provider_id, change.kind, change.is_read) == (arrived[1]["id"], ChangeKind.READ_STATE, False)

    # Nothing changed: an empty increment still completes.
    latest = (await run_sync(client, pages[-1].cursor))[-1].cursor
    again = await run_sync(client, latest)
    assert changes_of(again) == [] and again[-1].complete


async def test_incremental_uses_history_and_fetches_only_added(connected, world):
    account, client = connected
    cursor = (await run_sync(client, None))[-1].cursor
    world.control.delete("/requests")
    for i in range(3):
        world.inbound(account.address, subject=f"n{i}", text="x")
    pages = await run_sync(client, cursor)
    assert sorted(c.message.subject for c in changes_of(pages)) == ["n0", "n1", "n2"]
    log = world.requests(account.address)
    paths = [r["path"] for r in log]
    assert paths.count("/gmail/v1/users/me/history") == 1
    assert not any(p == "/gmail/v1/users/me/messages" for p in paths)  # no listing
    gets = [r for r in log if r["path"].startswith("/gmail/v1/users/me/messages/")]
    assert len(gets) == 3 and all("format=full" in r["query"] for r in gets)


async def test_increment_resumes_from_a_history_record_id(connected, world):
    account, client = connected
    cursor = (await run_sync(client, None))[-1].cursor
    world.inbound_bulk(account.address, [{"subject": f"h{i}", "text": "x"} for i in range(130)])
    passes = client.sync(cursor)
    first = await anext(passes)  # 100 history records a page
    await passes.aclose()  # the worker dies after committing the first page
    assert not first.complete and len(first.changes) == 100
    assert int(cursor["history_id"]) < int(first.cursor["history_id"])
    rest = await run_sync(client, first.cursor)
    seen = {c.provider_id for c in first.changes}
    rest_ids = {c.provider_id for c in changes_of(rest)}
    assert len(rest_ids) == 30 and not rest_ids & seen and rest[-1].complete


async def test_full_sync_resumes_from_a_mid_pass_cursor(world, mailbox, refreshed):
    small = world.build_provider()
    small.list_page_size, small.batch_size = 10, 5
    account = await world.sign_in(mailbox, small)
    world.inbound_bulk(mailbox, [{"subject": f"bulk {i}", "text": "x"} for i in range(23)])
    client = small.client(account.tokens, refreshed)
    try:
        seen, crash_cursor = [], None
        passes = client.sync(None)
        async for page in passes:
            seen += [c.provider_id for c in page.changes]
            crash_cursor = page.cursor
            if len(seen) >= 10:
                break  # the worker dies after committing this page
        await passes.aclose()
        assert crash_cursor["full"] == {"label": "INBOX", "page_token": crash_cursor["full"]["page_token"], "after": None}
        assert crash_cursor["full"]["page_token"]  # the second list page of INBOX
        world.control.delete("/requests")
        rest = await run_sync(client, crash_cursor)
    finally:
        await client.aclose()
        small.auth.close()
    rest_ids = [c.provider_id for c in changes_of(rest)]
    assert not set(rest_ids) & set(seen) and len(seen) + len(rest_ids) == 23
    assert rest[-1].complete and rest[-1].cursor == {"v": 1, "history_id": crash_cursor["history_id"]}
    fetched_again = [r for r in world.requests(mailbox) if r["path"].rsplit("/", 1)[-1] in seen]
    assert fetched_again == []  # nothing imported before the crash is fetched twice


async def test_expired_history_raises_then_full_resync_works(connected, world, control):
    account, client = connected
    world.inbound(account.address, subject="before", text="x")
    cursor = (await run_sync(client, None))[-1].cursor
    assert control.post(f"/mailboxes/{account.address}/expire-cursors").status_code == 200
    world.inbound(account.address, subject="after", text="y")
    with pytest.raises(CursorExpiredError):
        await run_sync(client, cursor)
    assert [r["status"] for r in world.requests(account.address, "/gmail/v1/users/me/history")][-1] == 404
    pages = await run_sync(client, None)
    assert sorted(c.message.subject for c in changes_of(pages)) == ["after", "before"]


async def test_import_costs_at_most_5_2_units_per_message(connected, world, control):
    account, client = connected
    count = 240
    world.inbound_bulk(account.address, [{"subject": f"m{i}", "text": "x"} for i in range(count)])
    control.delete("/requests")
    pages = await run_sync(client, None)
    assert len(changes_of(pages)) == count
    log = world.requests(account.address)
    units = sum(r.get("quotaUnits") or 0 for r in log)
    assert units == client.api.units_spent  # our ledger agrees with Google's meter
    assert units / count <= 5.2
    batches = world.requests(None, "/batch/gmail/v1")
    assert batches and all(r["status"] == 200 for r in batches)
    gets = [r for r in log if r["path"].startswith("/gmail/v1/users/me/messages/")]
    assert len(gets) == count  # one messages.get each, through the batch endpoint


async def test_quota_429_is_honoured_and_the_import_still_finishes(connected, world, control, sleeps):
    account, client = connected
    sleeps.real = True  # the sandbox's quota window runs on real time: the waits must pass
    count = 100
    world.inbound_bulk(account.address, [{"subject": f"q{i}", "text": "x"} for i in range(count)])
    control.delete("/requests")
    # A tiny per-user quota: 200 units per 2 s window. A batch of 50 gets costs 250, so
    # the first batch alone is refused in part however fast or slow this machine is.
    world.config(gmail_quota_per_minute=200, gmail_quota_window_seconds=2.0)
    pages = await run_sync(client, None)
    ids = {c.provider_id for c in changes_of(pages)}
    assert len(ids) == count and pages[-1].complete
    log = world.requests(account.address)
    refused = [r for r in log if r["status"] == 429]
    assert refused, "the lowered quota must have refused some calls"
    assert client.api.throttled_responses >= 1
    assert sleeps.calls and max(sleeps.calls) <= 2.0  # waited what Google asked: at most its 2 s window
    # every refused call was followed by a success for the same resource: nothing lost
    ok_targets = {(r["path"], r["query"]) for r in log if r["status"] == 200}
    assert all((r["path"], r["query"]) in ok_targets for r in refused)
    assert sum(r.get("quotaUnits") or 0 for r in log if r["status"] == 200) / count <= 5.2


async def test_server_errors_on_reads_are_retried(connected, world, sleeps):
    account, client = connected
    world.inbound(account.address, subject="flaky", text="x")
    world.fault(status=503, path="/gmail/v1/users/me/messages", count=1)
    pages = await run_sync(client, None)
    assert [c.message.subject for c in changes_of(pages)] == ["flaky"]
    (backoff,) = sleeps.calls  # no Retry-After: one exponential backoff step (1 s, jittered)
    assert 0.75 <= backoff <= 1.25


async def test_attachments_listed_then_fetched(connected, world):
    account, client = connected
    pdf = b"%PDF-1.4 tiny test pdf\n%%EOF\n"
    msg = world.inbound(
        account.address,
        subject="with file",
        html="<p>see attached</p>",
        attachments=[{"filename": "quote.pdf", "content_type": "application/pdf",
                      "content_base64": base64.b64encode(pdf).decode()}],
    )
    (change,) = changes_of(await run_sync(client, None))
    (att,) = change.message.attachments
    assert (att.filename, att.content_type, att.size) == ("quote.pdf", "application/pdf", len(pdf))
    assert att.content is None and att.provider_attachment_id
    assert change.message.html.strip() == "<p>see attached</p>"
    assert await client.fetch_attachment(msg["id"], att.provider_attachment_id) == pdf


async def test_get_message_and_set_read(connected, world):
    account, client = connected
    msg = world.inbound(account.address, subject="read me", text="x")
    got = await client.get_message(msg["id"])
    assert (got.subject, got.is_read, got.folder) == ("read me", False, Folder.INBOX)
    await client.set_read(msg["id"], True)
    assert world.message(account.address, msg["id"])["isRead"] is True
    await client.set_read(msg["id"], False)
    assert world.message(account.address, msg["id"])["isRead"] is False
    with pytest.raises(NotFoundError):
        await client.get_message("0123456789abcdef")


async def test_raw_mime_with_charset_and_nested_parts(connected, world):
    account, client = connected
    raw = (
        "From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.com>\r\n"
        f"To: {account.address}\r\n"
        "Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"
        "Message-ID: <raw-1@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        "--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        "--inner\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "Gr=FC=DFe\r\n"
        "--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Grüße</p>\r\n"
        "--inner--\r\n"
        "--outer\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment; filename=notes.txt\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"some notes").decode() + "\r\n"
        "--outer--\r\n"
    )
    world.inbound(account.address, raw=raw)
    (change,) = changes_of(await run_sync(client, None))
    message = change.message
    assert message.subject == "Grüße" and message.sender.name == "Jürgen"
    assert message.text.strip() == "Grüße" and message.html.strip() == "<p>Grüße</p>"
    assert message.message_id == "<raw-1@example.com>"
    (att,) = message.attachments
    assert att.filename == "notes.txt"
    assert await client.fetch_attachment(message.provider_id, att.provider_attachment_id) == b"some notes"
