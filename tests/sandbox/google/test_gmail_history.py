"""users.history.list: records for added/deleted messages and label changes,
filters, paging, rising non-contiguous ids, and 404 once history expired."""

from __future__ import annotations

import itertools


def _history(sam, start: str, **params) -> dict:
    return sam.get("/history", "ListHistoryResponse", params={"startHistoryId": start, **params})


def test_added_label_and_deleted_records(gmail, deliver, control):
    sam = gmail()
    start = sam.profile()["historyId"]
    assert _history(sam, start) == {"historyId": start}

    arrived = deliver(sam.address, subject="New listing")
    sam.post(f"/messages/{arrived['id']}/modify", json={"removeLabelIds": ["UNREAD"], "addLabelIds": ["STARRED"]})
    sam.post(f"/messages/{arrived['id']}/trash")
    control.delete(f"/mailboxes/sam@gmail.test/messages/{arrived['id']}")

    body = _history(sam, start)
    records = body["history"]
    assert [set(r) - {"id", "messages"} for r in records] == [
        {"messagesAdded"}, {"labelsAdded", "labelsRemoved"}, {"labelsAdded", "labelsRemoved"}, {"messagesDeleted"}]
    ref = {"id": arrived["id"], "threadId": arrived["id"]}
    assert all(r["messages"] == [ref] for r in records)
    assert records[0]["messagesAdded"] == [{"message": {**ref, "labelIds": ["INBOX", "UNREAD"]}}]
    assert records[1]["labelsAdded"] == [{"message": {**ref, "labelIds": ["INBOX", "STARRED"]}, "labelIds": ["STARRED"]}]
    assert records[1]["labelsRemoved"] == [{"message": {**ref, "labelIds": ["INBOX", "STARRED"]}, "labelIds": ["UNREAD"]}]
    assert records[2]["labelsAdded"][0]["labelIds"] == ["TRASH"] and records[2]["labelsRemoved"][0]["labelIds"] == ["INBOX"]
    assert records[3]["messagesDeleted"] == [{"message": ref}]

    ids = [int(r["id"]) for r in records]
    assert ids == sorted(ids) and int(start) < ids[0] and ids[-1] == int(body["historyId"])
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))  # ids are not contiguous, as Google warns
    assert int(sam.profile()["historyId"]) == ids[-1]

    # Starting from a record's id returns what came after it.
    assert [r["id"] for r in _history(sam, records[1]["id"])["history"]] == [r["id"] for r in records[2:]]
    # A start id between two records (a gap) works too.
    assert [r["id"] for r in _history(sam, str(ids[0] + 1))["history"]] == [r["id"] for r in records[1:]]


def test_filters_and_paging(gmail, deliver):
    sam = gmail()
    start = sam.profile()["historyId"]
    ids = [deliver(sam.address, subject=f"n{i}")["id"] for i in range(5)]
    for mid in ids:
        sam.post(f"/messages/{mid}/modify", json={"removeLabelIds": ["UNREAD"]})

    added = _history(sam, start, historyTypes="messageAdded")["history"]
    assert [r["messagesAdded"][0]["message"]["id"] for r in added] == ids
    removed = _history(sam, start, historyTypes=["labelRemoved", "labelAdded"])["history"]
    assert len(removed) == 5 and all(set(r) == {"id", "messages", "labelsRemoved"} for r in removed)
    unread = _history(sam, start, labelId="UNREAD")["history"]
    assert len(unread) == 10
    assert "history" not in _history(sam, start, labelId="SENT")

    seen, token = [], None
    while True:
        page = _history(sam, start, maxResults=3, **({"pageToken": token} if token else {}))
        seen += [r["id"] for r in page["history"]]
        token = page.get("nextPageToken")
        if token is None:
            break
    assert seen == [r["id"] for r in _history(sam, start)["history"]] and len(seen) == 10

    bad = sam.get("/history", params={"startHistoryId": start, "historyTypes": "messageMoved"}, status=400)
    assert bad["error"]["status"] == "INVALID_ARGUMENT"
    missing = sam.get("/history", status=400)
    assert missing["error"]["errors"][0]["reason"] == "required"


def test_expired_history_answers_404_until_the_client_resyncs(gmail, deliver, control):
    sam = gmail()
    start = sam.profile()["historyId"]
    deliver(sam.address)
    assert len(_history(sam, start)["history"]) == 1
    assert control.post("/mailboxes/sam@gmail.test/expire-cursors").status_code == 200

    for stale in (start, sam.get("/messages/" + sam.get("/messages")["messages"][0]["id"])["historyId"]):
        expired = sam.get("/history", params={"startHistoryId": stale}, status=404)
        assert expired["error"] == {"code": 404, "message": "Requested entity was not found.", "errors": [
            {"message": "Requested entity was not found.", "domain": "global", "reason": "notFound"}], "status": "NOT_FOUND"}

    # Full sync: the id getProfile gives now is retained, even before anything changes.
    fresh = sam.profile()["historyId"]
    assert int(fresh) > int(start)
    assert _history(sam, fresh) == {"historyId": fresh}
    later = deliver(sam.address, subject="after the resync")
    records = _history(sam, fresh)["history"]
    assert [r["messagesAdded"][0]["message"]["id"] for r in records] == [later["id"]]


def test_ids_never_issued_are_not_found(gmail):
    sam = gmail()
    current = int(sam.profile()["historyId"])
    assert sam.get("/history", params={"startHistoryId": str(current + 1000)}, status=404)["error"]["code"] == 404
    assert sam.get("/history", params={"startHistoryId": "1"}, status=404)["error"]["code"] == 404
    assert sam.get("/history", params={"startHistoryId": "abc"}, status=400)["error"]["code"] == 400


def test_message_history_id_tracks_its_last_change(gmail, deliver):
    sam = gmail()
    mid = deliver(sam.address)["id"]
    before = int(sam.message(mid, "minimal")["historyId"])
    deliver(sam.address, subject="unrelated")
    assert int(sam.message(mid, "minimal")["historyId"]) == before
    sam.post(f"/messages/{mid}/modify", json={"removeLabelIds": ["UNREAD"]})
    after = int(sam.message(mid, "minimal")["historyId"])
    assert after > before and after == int(sam.profile()["historyId"])
