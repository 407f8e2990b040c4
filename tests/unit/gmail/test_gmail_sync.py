"""Full pass and history increments against the in-memory Gmail: pages, cursors,
resume, quota units per message, folding of history records."""

from __future__ import annotations

import pytest

from sync_engine.domain import ChangeKind, CursorExpiredError, Folder
from sync_engine.providers.gmail.quota import full_sync_units
from sync_engine.providers.gmail.sync import GmailSync, fold_history, load_cursor

UNITS = {"profile": 1, "messages.list": 5, "messages.get": 5, "history": 2}


async def run(engine, cursor):
    return [page async for page in engine.pages(cursor)]


def changes_of(pages):
    return [c for p in pages for c in p.changes]


def units(fake) -> int:
    return sum(UNITS[k] * v for k, v in fake.units.items())


def seed(fake, helpers, inbox=0, sent=0):
    for i in range(inbox):
        fake.add(helpers.full_message(f"i{i:05d}", subject=f"in {i}"))
    for i in range(sent):
        fake.add(helpers.full_message(f"s{i:05d}", labels=("SENT",), subject=f"out {i}"))


async def test_full_sync_pages_cursors_and_folders(fake_gmail, helpers, make_api):
    seed(fake_gmail, helpers, inbox=130, sent=7)
    fake_gmail.add(helpers.full_message("d1", labels=("DRAFT",)))
    fake_gmail.add(helpers.full_message("x1", labels=("INBOX", "TRASH")))
    start = str(fake_gmail.history_id)
    engine = GmailSync(make_api(fake_gmail.transport()), list_page_size=50, batch_size=20)

    pages = await run(engine, None)
    # INBOX: list pages of 50/50/30 in batches of 20 -> 3+3+2 pages; SENT: 1 page.
    assert [len(p.changes) for p in pages] == [20, 20, 10, 20, 20, 10, 20, 10, 7]
    assert [p.complete for p in pages] == [False] * 8 + [True]
    ids = [c.provider_id for c in changes_of(pages)]
    assert len(ids) == len(set(ids)) == 137 and "d1" not in ids and "x1" not in ids
    assert {c.kind for c in changes_of(pages)} == {ChangeKind.UPSERT}
    by_id = {c.provider_id: c.message for c in changes_of(pages)}
    assert by_id["i00003"].folder is Folder.INBOX and by_id["i00003"].subject == "in 3"
    assert by_id["s00002"].folder is Folder.SENT
    last_of_first_batch = pages[0].changes[-1].provider_id
    assert pages[0].cursor == {"v": 1, "history_id": start,
                               "full": {"label": "INBOX", "page_token": None, "after": last_of_first_batch}}
    assert pages[2].cursor["full"] == {"label": "INBOX", "page_token": "p50", "after": None}
    assert pages[7].cursor["full"] == {"label": "SENT", "page_token": None, "after": None}
    assert pages[-1].cursor == {"v": 1, "history_id": start}
    assert max(fake_gmail.batch_sizes) <= 20


@pytest.mark.parametrize("count", [1, 49, 100, 501, 2000])
async def test_full_sync_spends_at_most_5_2_units_per_message(fake_gmail, helpers, make_api, count):
    seed(fake_gmail, helpers, inbox=count - count // 5, sent=count // 5)
    api = make_api(fake_gmail.transport())
    pages = await run(GmailSync(api), None)
    assert len(changes_of(pages)) == count
    spent = units(fake_gmail)
    assert spent == api.units_spent  # the adapter's own ledger agrees with the server's meter
    assert spent <= full_sync_units(count)
    if count >= 100:  # past the fixed cost of a pass (a profile read, one list per label)
        assert spent / count <= 5.2
    assert fake_gmail.units["messages.get"] == count  # one get per message, none repeated
    assert max(fake_gmail.batch_sizes, default=1) <= 50


async def test_full_sync_resumes_after_a_crash_without_refetching(fake_gmail, helpers, make_api):
    seed(fake_gmail, helpers, inbox=45, sent=12)
    engine = GmailSync(make_api(fake_gmail.transport()), list_page_size=20, batch_size=10)
    seen = []
    passes = engine.pages(None)
    async for page in passes:
        seen += [c.provider_id for c in page.changes]
        crash_cursor = page.cursor
        if len(seen) == 30:
            break  # the worker dies after committing this page
    await passes.aclose()  # (its prefetch of the next batch is abandoned)
    fake_gmail.calls.clear()
    fake_gmail.units.clear()
    rest = await run(engine, crash_cursor)
    rest_ids = [c.provider_id for c in changes_of(rest)]
    assert not set(rest_ids) & set(seen)
    assert len(seen) + len(rest_ids) == 57 and rest[-1].complete
    refetched = [t for _, t in fake_gmail.calls if any(f"messages/{mid}?" in t for mid in seen)]
    assert refetched == [] and fake_gmail.units["profile"] == 0
    assert rest[-1].cursor == {"v": 1, "history_id": crash_cursor["history_id"]}


async def test_resume_does_not_skip_when_messages_of_the_page_were_deleted(fake_gmail, helpers, make_api):
    seed(fake_gmail, helpers, inbox=12)
    engine = GmailSync(make_api(fake_gmail.transport()), list_page_size=50, batch_size=4)
    seen, crash_cursor = [], None
    async for page in engine.pages(None):
        seen += [c.provider_id for c in page.changes]
        crash_cursor = page.cursor
        if len(seen) == 4:
            break
    # two messages already imported are deleted before the retry: positions shift
    for mid in seen[:2]:
        del fake_gmail.messages[mid]
    rest = [c.provider_id for c in changes_of(await run(engine, crash_cursor))]
    assert set(seen) | set(rest) >= set(fake_gmail.messages) and not set(rest) & set(seen)
    # the resume point itself deleted: the page is replayed, nothing skipped
    del fake_gmail.messages[seen[3]]
    replay = [c.provider_id for c in changes_of(await run(engine, crash_cursor))]
    assert set(replay) == set(fake_gmail.messages)


async def test_stale_list_position_restarts_the_pass(fake_gmail, helpers, make_api):
    seed(fake_gmail, helpers, inbox=3)
    cursor = {"v": 1, "history_id": "5", "full": {"label": "INBOX", "page_token": "expired!", "offset": 0}}
    with pytest.raises(CursorExpiredError):
        await run(GmailSync(make_api(fake_gmail.transport())), cursor)


async def test_empty_mailbox_completes(fake_gmail, make_api):
    pages = await run(GmailSync(make_api(fake_gmail.transport())), None)
    assert len(pages) == 1 and pages[0].complete and pages[0].changes == []
    assert pages[0].cursor == {"v": 1, "history_id": str(fake_gmail.history_id)}


async def test_incremental_added_deleted_read_trash_and_drafts(fake_gmail, helpers, make_api):
    seed(fake_gmail, helpers, inbox=4)
    engine = GmailSync(make_api(fake_gmail.transport()))
    cursor = (await run(engine, None))[-1].cursor

    fake_gmail.add(helpers.full_message("new1", subject="fresh"), record=True)
    fake_gmail.add(helpers.full_message("out1", labels=("SENT",)), record=True)
    fake_gmail.add(helpers.full_message("draft1", labels=("DRAFT",)), record=True)
    fake_gmail.add(helpers.full_message("promo", labels=("CATEGORY_PROMOTIONS", "UNREAD")), record=True)
    fake_gmail.delete("i00000")
    fake_gmail.relabel("i00001", remove=("UNREAD",))
    fake_gmail.relabel("i00002", add=("TRASH",))
    fake_gmail.relabel("i00003", remove=("UNREAD",))
    fake_gmail.relabel("i00003", add=("UNREAD",))  # read, then unread again
    fake_gmail.units.clear()

    pages = await run(engine, cursor)
    assert pages[-1].complete and pages[-1].cursor == {"v": 1, "history_id": str(fake_gmail.history_id)}
    got = {c.provider_id: c for c in changes_of(pages)}
    assert set(got) == {"new1", "out1", "i00000", "i00001", "i00002", "i00003"}
    assert got["new1"].kind is ChangeKind.UPSERT and got["new1"].message.subject == "fresh"
    assert got["out1"].message.folder is Folder.SENT
    assert got["i00000"].kind is ChangeKind.REMOVED
    assert got["i00002"].kind is ChangeKind.REMOVED
    assert (got["i00001"].kind, got["i00001"].is_read) == (ChangeKind.READ_STATE, True)
    assert (got["i00003"].kind, got["i00003"].is_read) == (ChangeKind.READ_STATE, False)
    # history.list once, messages.get only for the two added messages of synced folders
    assert dict(fake_gmail.units) == {"history": 1, "messages.get": 2}

    again = await run(engine, pages[-1].cursor)
    assert changes_of(again) == [] and again[-1].complete


async def test_incremental_pages_carry_the_last_record_id(fake_gmail, helpers, make_api):
    engine = GmailSync(make_api(fake_gmail.transport()), history_page_size=2)
    cursor = (await run(engine, None))[-1].cursor
    record_ids = []
    for i in range(5):
        fake_gmail.add(helpers.full_message(f"n{i}"), record=True)
        record_ids.append(fake_gmail.history[-1]["id"])
    pages = await run(engine, cursor)
    assert [len(p.changes) for p in pages] == [2, 2, 1]
    assert [p.cursor["history_id"] for p in pages] == [record_ids[1], record_ids[3], str(fake_gmail.history_id)]
    assert [p.complete for p in pages] == [False, False, True]
    # resuming from an intermediate page's cursor yields only what follows it
    rest = await run(engine, pages[0].cursor)
    assert [c.provider_id for c in changes_of(rest)] == ["n2", "n3", "n4"]


async def test_added_then_deleted_within_a_page_is_not_fetched(fake_gmail, helpers, make_api):
    engine = GmailSync(make_api(fake_gmail.transport()))
    cursor = (await run(engine, None))[-1].cursor
    fake_gmail.add(helpers.full_message("brief"), record=True)
    fake_gmail.delete("brief")
    fake_gmail.units.clear()
    (change,) = changes_of(await run(engine, cursor))
    assert change.kind is ChangeKind.REMOVED and change.provider_id == "brief"
    assert "messages.get" not in fake_gmail.units


async def test_message_gone_before_its_fetch_is_removed(fake_gmail, helpers, make_api):
    engine = GmailSync(make_api(fake_gmail.transport()))
    cursor = (await run(engine, None))[-1].cursor
    fake_gmail.add(helpers.full_message("ghost"), record=True)
    del fake_gmail.messages["ghost"]  # deleted, its history record not visible yet
    (change,) = changes_of(await run(engine, cursor))
    assert change.kind is ChangeKind.REMOVED


async def test_stale_history_id_raises_cursor_expired(fake_gmail, make_api):
    fake_gmail.oldest_history = 10**6
    with pytest.raises(CursorExpiredError):
        await run(GmailSync(make_api(fake_gmail.transport())), {"v": 1, "history_id": "1000"})


@pytest.mark.parametrize(
    "cursor",
    [{"v": 2, "history_id": "1"}, {"v": 1}, {"v": 1, "history_id": "abc"},
     {"v": 1, "history_id": "1", "full": {"label": "SPAM"}}, {"v": 1, "history_id": "1", "full": {"label": "INBOX", "after": 5}},
     {"v": 1, "history_id": "1", "full": "INBOX"}],
)
def test_unreadable_cursors_mean_full_resync(cursor):
    with pytest.raises(CursorExpiredError):
        load_cursor(cursor)


def test_third_party_history_sample_folds(sample):
    page = sample("gmail_history_list_thirdparty_handwritten.json")
    plan = fold_history(page["history"])
    assert list(plan) == ["m3", "m1"]
    assert plan["m3"].action == "fetch" and plan["m3"].wanted
    assert plan["m1"].action == "removed"
    assert page["historyId"] == "902"


def test_folding_rules():
    def rec(kind, mid, labels=None, changed=None):
        msg = {"id": mid, "threadId": "t"}
        if labels is not None:
            msg["labelIds"] = labels
        entry = {"message": msg}
        if changed is not None:
            entry["labelIds"] = changed
        return {"id": "1", kind: [entry]}

    plan = fold_history([
        rec("messagesAdded", "draft", ["DRAFT"]),
        rec("messagesAdded", "chat", ["CHAT"]),
        rec("messagesAdded", "nolabels"),
        rec("messagesAdded", "a", ["INBOX", "UNREAD"]),
        rec("labelsRemoved", "a", ["INBOX"], ["UNREAD"]),  # folded into the fetch
        rec("labelsAdded", "b", ["INBOX", "SPAM"], ["SPAM"]),
        rec("labelsRemoved", "b", ["INBOX"], ["UNREAD"]),  # still removed
        rec("labelsRemoved", "c", ["INBOX"], ["TRASH"]),  # restored from the trash
        rec("labelsAdded", "d", ["INBOX"], ["INBOX"]),  # moved back to the inbox
        rec("labelsAdded", "e", ["INBOX", "STARRED"], ["STARRED"]),  # nothing we sync
    ])
    assert {k: v.action for k, v in plan.items()} == {
        "nolabels": "fetch", "a": "fetch", "b": "removed", "c": "fetch", "d": "fetch"}
    assert plan["nolabels"].wanted is False and plan["d"].wanted is True
