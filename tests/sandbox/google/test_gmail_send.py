"""users.messages.send: Message-ID retention, SENT label, delivery to sandbox
recipients, Gmail's threading rule (threadId + References + same subject),
and the upload endpoint."""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage

import httpx


def _raw(message: EmailMessage) -> str:
    return base64.urlsafe_b64encode(message.as_bytes()).decode()


def _compose(to: str, subject: str, text: str = "Hello", **headers: str) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["To"] = to
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


def _stored(sam, message_id: str) -> email.message.Message:
    raw = sam.message(message_id, "raw")["raw"]
    return email.message_from_bytes(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def test_send_keeps_message_id_and_delivers(gmail, control):
    sam = gmail()
    control.post("/mailboxes", json={"provider": "gmail", "address": "carol@gmail.test", "name": "Carol"})
    control.post("/mailboxes", json={"provider": "outlook", "address": "olly@contoso.test"})
    outgoing = _compose("Carol <carol@gmail.test>", "Viewing on Friday", Cc="olly@contoso.test",
                        Message_ID="<crm-1234@crm.example>", Bcc="secret@example.com")
    sent = sam.post("/messages/send", "Message", json={"raw": _raw(outgoing)})
    assert set(sent) == {"id", "threadId", "labelIds"} and sent["labelIds"] == ["SENT"]
    assert sent["threadId"] == sent["id"]

    stored = _stored(sam, sent["id"])
    assert stored["Message-ID"] == "<crm-1234@crm.example>"  # Gmail keeps the client's Message-ID
    assert stored["From"] == "Sam Seller <sam@gmail.test>" and stored["Date"]
    assert stored["Bcc"] == "secret@example.com"  # only in the sender's copy
    assert sam.get("/messages", params={"q": "rfc822msgid:<crm-1234@crm.example>"})["messages"] == [
        {"id": sent["id"], "threadId": sent["threadId"]}]

    carol = control.get("/mailboxes/carol@gmail.test/messages", params={"folder": "inbox"}).json()
    olly = control.get("/mailboxes/olly@contoso.test/messages", params={"folder": "inbox"}).json()
    assert [m["internetMessageId"] for m in carol] == [m["internetMessageId"] for m in olly] == ["<crm-1234@crm.example>"]
    assert carol[0]["labels"] == ["INBOX", "UNREAD"] and carol[0]["bcc"] == []


def test_message_id_and_from_are_added_when_missing(gmail):
    sam = gmail()
    outgoing = _compose("carol@example.com", "No id", From="Someone Else <else@example.com>")
    sent = sam.post("/messages/send", json={"raw": _raw(outgoing)})
    stored = _stored(sam, sent["id"])
    assert stored["Message-ID"].endswith("@mail.gmail.com>")
    assert stored["From"] == "Sam Seller <sam@gmail.test>"


def test_threading_needs_thread_id_references_and_subject(gmail, control):
    sam = gmail()
    control.post("/mailboxes", json={"provider": "gmail", "address": "carol@gmail.test"})
    carols = control.post("/mailboxes/carol@gmail.test/send", json={
        "to": "sam@gmail.test", "subject": "Offer for 12 Elm St", "text": "Our offer"}).json()
    (original,) = sam.get("/messages", params={"q": f"rfc822msgid:{carols['internetMessageId']}"})["messages"]
    refs = {"In_Reply_To": carols["internetMessageId"], "References": carols["internetMessageId"]}

    def send(subject: str, thread: str | None, **headers: str) -> dict:
        body = {"raw": _raw(_compose("carol@gmail.test", subject, **headers))}
        if thread:
            body["threadId"] = thread
        return sam.post("/messages/send", "Message", json=body)

    joined = send("Re: Offer for 12 Elm St", original["id"], **refs)
    assert joined["threadId"] == original["id"]
    assert send("Re: Offer for 12 Elm St", None, **refs)["threadId"] != original["id"]  # no threadId: new thread
    assert send("Something else", original["id"], **refs)["threadId"] != original["id"]  # subject changed
    assert send("Re: Offer for 12 Elm St", original["id"])["threadId"] != original["id"]  # no References
    missing = sam.post("/messages/send", json={"raw": _raw(_compose("carol@gmail.test", "x")), "threadId": "0123456789abcdef"},
                       status=404)
    assert missing["error"]["status"] == "NOT_FOUND"
    thread = sam.get(f"/threads/{original['id']}")
    assert [m["id"] for m in thread["messages"]] == [original["id"], joined["id"]]

    # Carol's Gmail threads incoming replies by References + subject (no threadId involved).
    inbox = control.get("/mailboxes/carol@gmail.test/messages", params={"folder": "inbox"}).json()
    by_subject = {(m["subject"], m["conversationId"] == carols["conversationId"]) for m in inbox}
    assert by_subject == {("Re: Offer for 12 Elm St", True), ("Something else", False), ("Re: Offer for 12 Elm St", False)}
    assert sum(m["conversationId"] == carols["conversationId"] for m in inbox) == 2  # both replies that cite it


def test_send_errors(gmail):
    sam = gmail()
    missing = sam.post("/messages/send", json={}, status=400)
    assert missing["error"]["message"] == "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
    nobody = sam.post("/messages/send", json={"raw": _raw(_compose("", "x"))}, status=400)
    assert nobody["error"]["message"] == "Recipient address required"
    garbage = sam.post("/messages/send", json={"raw": "!!!"}, status=400)
    assert garbage["error"]["code"] == 400


def test_upload_endpoint_media_and_multipart(gmail, sandbox_server):
    sam = gmail()
    upload = f"{sandbox_server.base_url}/upload/gmail/v1/users/me/messages/send"
    media = sam.client.post(upload, params={"uploadType": "media"}, content=_compose("c@example.com", "Media").as_bytes(),
                            headers={"Content-Type": "message/rfc822"})
    assert media.status_code == 200, media.text
    sam.discovery.validate(media.json(), "Message")
    first = media.json()

    related = (
        b"--xyz\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        + f'{{"threadId": "{first["threadId"]}"}}'.encode()
        + b"\r\n--xyz\r\nContent-Type: message/rfc822\r\n\r\n"
        + _compose("c@example.com", "Re: Media", In_Reply_To=_stored(sam, first["id"])["Message-ID"]).as_bytes()
        + b"\r\n--xyz--\r\n"
    )
    multipart = sam.client.post(upload, params={"uploadType": "multipart"}, content=related,
                                headers={"Content-Type": "multipart/related; boundary=xyz"})
    assert multipart.status_code == 200, multipart.text
    assert multipart.json()["threadId"] == first["threadId"]
    assert sam.client.post(upload, params={"uploadType": "resumable"}, content=b"x").status_code == 400
    assert httpx.post(upload, params={"uploadType": "media"}, verify=sandbox_server.ssl_context()).status_code == 401
