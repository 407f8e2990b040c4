"""Gmail API read and label operations on the sandbox store; every answer is
validated against the discovery document's schema."""

from __future__ import annotations

import base64
import re

import pytest

from tests.sandbox.google.conftest import FULL
from tests.sandbox.google.discovery_schema import SAMPLES

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def _decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _headers(part: dict) -> dict[str, str]:
    return {h["name"].lower(): h["value"] for h in part["headers"]}


def test_profile_and_message_formats(gmail, deliver, control):
    sam = gmail()
    plain = deliver(sam.address, subject="Plain one", text="The actual message text goes here")
    rich = deliver(sam.address, subject="Viewing on Friday", text="See you *Friday*", html="<p>See you <b>Friday</b></p>",
                   attachments=[{"filename": "floor plan.png", "content_type": "image/png",
                                 "content_base64": base64.b64encode(PNG).decode()}])
    profile = sam.profile()
    assert profile["emailAddress"] == "sam@gmail.test"
    assert profile["messagesTotal"] == 2 and profile["threadsTotal"] == 2
    assert int(profile["historyId"]) > 0

    message = sam.message(rich["id"])
    assert re.fullmatch(r"[0-9a-f]{16}", message["id"]) and message["threadId"] == message["id"]
    assert message["labelIds"] == ["UNREAD", "INBOX"]
    assert message["snippet"] == "See you *Friday*"
    assert abs(int(message["internalDate"]) - int(sam.message(plain["id"])["internalDate"])) < 60_000
    payload = message["payload"]
    assert payload["partId"] == "" and payload["mimeType"] == "multipart/mixed" and payload["body"] == {"size": 0}
    headers = _headers(payload)
    assert headers["subject"] == "Viewing on Friday" and headers["message-id"] == rich["internetMessageId"]
    alternative, attachment = payload["parts"]
    assert alternative["partId"] == "0" and alternative["mimeType"] == "multipart/alternative"
    text, markup = alternative["parts"]
    assert (text["partId"], text["mimeType"], markup["partId"], markup["mimeType"]) == ("0.0", "text/plain", "0.1", "text/html")
    assert _decode(text["body"]["data"]).decode().strip() == "See you *Friday*"
    assert text["body"]["size"] == len(_decode(text["body"]["data"]))
    assert b"<b>Friday</b>" in _decode(markup["body"]["data"])
    assert attachment["partId"] == "1" and attachment["filename"] == "floor plan.png"
    assert attachment["mimeType"] == "image/png" and set(attachment["body"]) == {"attachmentId", "size"}
    assert attachment["body"]["size"] == len(PNG)

    raw = sam.message(rich["id"], "raw")
    assert "payload" not in raw and _decode(raw["raw"]) == control.get(f"/mailboxes/sam@gmail.test/messages/{rich['id']}").json()["mime"].encode()
    assert raw["sizeEstimate"] == len(_decode(raw["raw"]))
    metadata = sam.message(rich["id"], "metadata", metadataHeaders=["Subject", "From"])
    assert {h["name"] for h in metadata["payload"]["headers"]} == {"Subject", "From"}
    minimal = sam.message(rich["id"], "minimal")
    assert "payload" not in minimal and "raw" not in minimal and minimal["historyId"] == message["historyId"]


def test_attachments_get_with_ids_that_change_per_fetch(gmail, deliver):
    sam = gmail()
    sent = deliver(sam.address, attachments=[{"filename": "a.png", "content_type": "image/png",
                                              "content_base64": base64.b64encode(PNG).decode()}])
    other = deliver(sam.address, subject="Other")
    first = sam.message(sent["id"])["payload"]["parts"][1]["body"]["attachmentId"]
    second = sam.message(sent["id"])["payload"]["parts"][1]["body"]["attachmentId"]
    assert first != second  # like Gmail: never a stable key
    for attachment_id in (first, second):
        body = sam.get(f"/messages/{sent['id']}/attachments/{attachment_id}", "MessagePartBody")
        assert _decode(body["data"]) == PNG and body["size"] == len(PNG)
    foreign = sam.get(f"/messages/{other['id']}/attachments/{first}", status=400)
    assert foreign["error"]["errors"][0]["reason"] == "invalidArgument"


def test_list_queries_labels_and_paging(gmail, deliver, control):
    sam = gmail()
    ids = [deliver(sam.address, subject=f"Note {i}", text=f"body {i}")["id"] for i in range(5)]
    mine = control.post("/mailboxes/sam@gmail.test/send", json={"to": "carol@example.com", "subject": "Outgoing", "text": "x"}).json()
    control.patch(f"/mailboxes/sam@gmail.test/messages/{ids[0]}", json={"isRead": True})

    listing = sam.get("/messages", "ListMessagesResponse")
    assert [m["id"] for m in listing["messages"]] == [mine["id"], *reversed(ids)]  # newest first
    assert listing["resultSizeEstimate"] == 6 and "nextPageToken" not in listing
    assert all(set(m) == {"id", "threadId"} for m in listing["messages"])

    def query(**params) -> list[str]:
        body = sam.get("/messages", "ListMessagesResponse", params=params)
        return [m["id"] for m in body.get("messages", [])]

    assert query(q="in:sent") == [mine["id"]]
    assert query(labelIds="SENT") == [mine["id"]]
    assert set(query(q="in:inbox is:unread")) == set(ids[1:])
    assert query(q=f"rfc822msgid:{mine['internetMessageId']}") == [mine["id"]]
    assert query(q=f"rfc822msgid:{mine['internetMessageId'].strip('<>')}") == [mine["id"]]
    assert query(q='subject:"Note 3"') == [ids[3]]
    assert query(q="from:carol@example.com -subject:note") == []
    assert len(query(q="after:2001/01/01")) == 6 and query(q="before:2001/01/01") == []
    assert query(q="subject:Outgoing OR subject:\"Note 1\"") == [mine["id"], ids[1]]
    assert query(labelIds=["INBOX", "UNREAD"], maxResults=500) == list(reversed(ids[1:]))

    seen, token, pages = [], None, 0
    while True:
        params = {"maxResults": 2, **({"pageToken": token} if token else {})}
        page = sam.get("/messages", "ListMessagesResponse", params=params)
        seen += [m["id"] for m in page["messages"]]
        pages += 1
        token = page.get("nextPageToken")
        if not token:
            break
    assert pages == 3 and seen == [mine["id"], *reversed(ids)]


def test_modify_archive_trash_untrash_delete(gmail, deliver, control):
    sam = gmail()
    first, second, third = (deliver(sam.address, subject=f"m{i}")["id"] for i in range(3))
    read = sam.post(f"/messages/{first}/modify", "Message", json={"removeLabelIds": ["UNREAD"]})
    assert read == {"id": first, "threadId": first, "labelIds": ["INBOX"]}
    assert control.get(f"/mailboxes/sam@gmail.test/messages/{first}").json()["isRead"] is True
    sam.post(f"/messages/{first}/modify", "Message", json={"addLabelIds": ["UNREAD", "STARRED"]})
    assert sam.message(first, "minimal")["labelIds"] == ["UNREAD", "STARRED", "INBOX"]

    archived = sam.post(f"/messages/{second}/modify", "Message", json={"removeLabelIds": ["INBOX"]})
    assert archived["labelIds"] == ["UNREAD"]
    assert second not in [m["id"] for m in sam.get("/messages", params={"q": "in:inbox"})["messages"]]
    assert second in [m["id"] for m in sam.get("/messages")["messages"]]  # still in All Mail
    assert control.get(f"/mailboxes/sam@gmail.test/messages/{second}").json()["folder"] == "archive"

    trashed = sam.post(f"/messages/{third}/trash", "Message")
    assert trashed["labelIds"] == ["UNREAD", "TRASH"]
    assert third not in [m["id"] for m in sam.get("/messages")["messages"]]
    assert sam.get("/messages", params={"q": "in:trash"})["messages"] == [{"id": third, "threadId": third}]
    assert sam.post(f"/messages/{third}/untrash", "Message")["labelIds"] == ["UNREAD", "INBOX"]

    sam.post("/messages/batchModify", json={"ids": [first, second, third], "removeLabelIds": ["UNREAD"]}, status=204)
    assert sam.get("/messages", params={"q": "is:unread"}) == {"resultSizeEstimate": 0}

    for label in ("SENT", "NOT_A_LABEL"):
        bad = sam.post(f"/messages/{first}/modify", json={"addLabelIds": [label]}, status=400)
        assert bad["error"]["message"] == f"Invalid label: {label}"

    # messages.delete needs the full https://mail.google.com/ scope.
    denied = sam.call("DELETE", f"/messages/{first}", status=403)
    assert denied["error"]["errors"][0]["reason"] == "insufficientPermissions"
    full = gmail(scopes=("openid", "email", FULL))
    full.call("DELETE", f"/messages/{first}", status=204)
    gone = full.get(f"/messages/{first}", status=404)
    assert gone == {"error": {"code": 404, "message": "Requested entity was not found.", "errors": [
        {"message": "Requested entity was not found.", "domain": "global", "reason": "notFound"}], "status": "NOT_FOUND"}}


def test_errors_and_partial_responses(gmail, deliver):
    sam = gmail()
    mid = deliver(sam.address)["id"]
    assert sam.get("/messages/not-an-id", status=400)["error"]["message"] == "Invalid id value"
    assert sam.get(f"/messages/{mid}", params={"format": "html"}, status=400)["error"]["status"] == "INVALID_ARGUMENT"
    partial = sam.get(f"/messages/{mid}", "Message", params={"fields": "id,payload(headers,partId)"})
    assert set(partial) == {"id", "payload"} and set(partial["payload"]) == {"headers", "partId"}
    listing = sam.get("/messages", "ListMessagesResponse", params={"fields": "messages/id"})
    assert listing == {"messages": [{"id": mid}]}
    assert sam.get("/messages", params={"fields": "messages("}, status=400)["error"]["code"] == 400


def test_readonly_and_metadata_scopes(gmail, deliver, control):
    reader = gmail(scopes=("https://www.googleapis.com/auth/gmail.readonly",))
    mid = deliver(reader.address)["id"]
    reader.message(mid)
    denied = reader.post(f"/messages/{mid}/modify", json={"removeLabelIds": ["UNREAD"]}, status=403)
    assert denied["error"]["message"] == "Request had insufficient authentication scopes."
    meta = gmail("meta@gmail.test", scopes=("https://www.googleapis.com/auth/gmail.metadata",))
    mid = deliver(meta.address)["id"]
    meta.message(mid, "metadata")
    assert meta.get(f"/messages/{mid}", params={"format": "full"}, status=403)["error"]["code"] == 403
    assert meta.get("/messages", params={"q": "is:unread"}, status=403)["error"]["code"] == 403


def test_threads_and_control_changes_on_gmail_mailboxes(gmail, deliver, control):
    sam = gmail()
    first = deliver(sam.address, subject="Offer for 12 Elm St")
    reply = deliver(sam.address, subject="Re: Offer for 12 Elm St", in_reply_to=first["internetMessageId"],
                    references=[first["internetMessageId"]])
    renamed = deliver(sam.address, subject="Totally different", in_reply_to=first["internetMessageId"])
    assert reply["conversationId"] == first["id"]  # Gmail: a thread is named after its first message
    assert renamed["conversationId"] == renamed["id"]  # a changed subject breaks the thread in Gmail
    thread = sam.get(f"/threads/{first['id']}", "Thread")
    assert thread["id"] == first["id"] and [m["id"] for m in thread["messages"]] == [first["id"], reply["id"]]
    assert thread["historyId"] == thread["messages"][-1]["historyId"]
    threads = sam.get("/threads", "ListThreadsResponse")
    assert {t["id"] for t in threads["threads"]} == {first["id"], renamed["id"]}
    assert sam.get("/threads/0123456789abcdef", status=404)["error"]["status"] == "NOT_FOUND"

    control.patch(f"/mailboxes/sam@gmail.test/messages/{reply['id']}", json={"isRead": True, "labels": ["Label_7"]})
    assert sam.message(reply["id"], "minimal")["labelIds"] == ["Label_7", "INBOX"]
    control.patch(f"/mailboxes/sam@gmail.test/messages/{reply['id']}", json={"folder": "archive"})
    assert sam.message(reply["id"], "minimal")["labelIds"] == ["Label_7"]
    labels = sam.get("/labels", "ListLabelsResponse")
    assert {"INBOX", "SENT", "UNREAD", "Label_7"} <= {label["id"] for label in labels["labels"]}


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.eml")))
def test_real_world_mime_renders_in_every_format(gmail, control, sample):
    sam = gmail()
    raw = (SAMPLES / sample).read_bytes()
    created = control.post("/mailboxes/sam@gmail.test/inbound", json={"raw": base64.b64encode(raw).decode()})
    assert created.status_code == 201
    mid = created.json()["id"]
    full = sam.message(mid)
    for fmt in ("raw", "metadata", "minimal"):
        sam.message(mid, fmt)

    def walk(part: dict) -> list[dict]:
        return [part, *[p for child in part.get("parts", []) for p in walk(child)]]

    for part in walk(full["payload"]):
        if part["body"].get("attachmentId"):
            body = sam.get(f"/messages/{mid}/attachments/{part['body']['attachmentId']}", "MessagePartBody")
            assert body["size"] == part["body"]["size"] == len(_decode(body["data"]))
