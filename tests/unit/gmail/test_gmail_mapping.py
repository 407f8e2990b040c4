"""``format=full`` captures -> MailMessage: every real Gmail sample, and the edge cases."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from sync_engine.domain import Folder
from sync_engine.providers.gmail import mapping

REAL_CAPTURES = [
    "gmail_message_full_plaintext.json",
    "gmail_message_full_multipart_alternative.json",
    "gmail_message_full_plaintext_attachment.json",
    "gmail_message_full_with_attachments.json",
]


@pytest.mark.parametrize("name", REAL_CAPTURES)
def test_every_capture_parses_with_its_own_ids(sample, name):
    item = sample(name)
    message = mapping.message_of(item)
    assert message.provider_id == item["id"]
    assert message.thread_key == item["threadId"]
    assert message.message_id and message.message_id.startswith("<CADsZLR") and message.message_id.endswith("@mail.gmail.com>")
    assert message.sender is not None and message.sender.email == "example@gmail.com"
    assert message.text  # every capture has a text body
    assert message.sent_at == datetime.fromtimestamp(int(item["internalDate"]) / 1000, UTC)


def test_plaintext_root_with_empty_part_id_and_lowercase_headers(sample):
    item = sample("gmail_message_full_plaintext.json")
    assert item["payload"]["partId"] == ""
    message = mapping.message_of(item)
    assert message.subject == "Subject Text"
    assert message.sender.email == "example@gmail.com" and message.sender.name is None
    assert [a.email for a in message.to] == ["example@gmail.com"]
    assert message.text == "The actual message text goes here"
    assert message.html is None
    assert message.message_id == "<CADsZLRwWjzfYvtqgvJ1qhPN-5H+1dAzDE6AUprSSW+Mi3SnW3A@mail.gmail.com>"
    assert message.folder is Folder.SENT  # labelled SENT and INBOX (mail to oneself)
    assert message.is_read is True and message.is_draft is False
    assert message.attachments == []
    assert message.sent_at == datetime(2015, 12, 27, 0, 3, 23, tzinfo=UTC)


def test_multipart_alternative_without_root_part_id(sample):
    item = sample("gmail_message_full_multipart_alternative.json")
    assert "partId" not in item["payload"]
    message = mapping.message_of(item)
    assert message.subject == "cool man"
    assert message.sender.name == "example"
    assert message.text == "wow\r\n"
    assert message.html == '<div dir="ltr">wow</div>\r\n'
    assert message.is_read is False  # UNREAD
    assert message.message_id == "<CADsZLRwRhzvZM1xYykMtJspJXd1uXrg=SU5uFAzj_e2omKhekw@mail.gmail.com>"


def test_nested_multipart_with_text_attachment(sample):
    item = sample("gmail_message_full_plaintext_attachment.json")
    message = mapping.message_of(item)
    assert message.subject == "text attached"
    assert message.thread_key == "156576c760d1bcde"  # differs from the id in this capture
    assert message.text == "cool *stuff*\r\n"
    assert message.html == '<div dir="ltr">cool <b>stuff</b></div>\r\n'
    (att,) = message.attachments
    assert att.filename == "a_text_file.txt"
    assert att.content_type == "text/plain"
    assert att.size == 277400
    assert att.provider_attachment_id.startswith("ANGjdJ_Pic3qhYeU9X5cDL1BwF7qhARqZLU4ACc9duXq4Qym")
    assert att.content is None and att.is_inline is False
    assert message.folder is Folder.SENT and message.is_read is True


def test_two_image_attachments(sample):
    message = mapping.message_of(sample("gmail_message_full_with_attachments.json"))
    assert message.subject == "This is my jam"
    assert [(a.filename, a.content_type, a.size) for a in message.attachments] == [
        ("a3Ln90e_460s.jpg", "image/jpeg", 66308),
        ("feelthebern.jpg", "image/jpeg", 100446),
    ]
    assert message.attachments[0].provider_attachment_id.startswith("ANGjdJ-b5xFilbsQbB4DIqy2wE6")
    assert message.text == "cool *stuff*\r\n"  # the body is not mistaken for an attachment


def test_draft_sample_is_a_draft(sample):
    draft = sample("gmail_draft_get_full.json")
    message = mapping.message_of(draft["message"])
    assert message.is_draft is True
    assert message.subject == "some subject text"
    assert message.sender.email == "example@gmail.com" and message.sender.name is None  # "<example@gmail.com>"
    assert message.text == "Can it parse *draft *now? Sure can!\r\n"
    assert message.html == '<div dir="ltr">Can it parse <b>draft </b>now? Sure can!</div>\r\n'
    assert not mapping.is_synced(mapping.labels_of(draft["message"]))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def part(mime, data=None, *, headers=(), filename="", attachment_id=None, parts=None, size=None):
    body = {"size": size if size is not None else len(data or b"")}
    if data is not None:
        body["data"] = b64url(data)
    if attachment_id:
        body["attachmentId"] = attachment_id
    result = {"mimeType": mime, "filename": filename, "headers": list(headers), "body": body}
    if parts is not None:
        result["parts"] = parts
    return result


def h(name, value):
    return {"name": name, "value": value}


def test_charset_threading_headers_and_inline_image():
    html = "<p>Grüße <img src=\"cid:logo@x\"></p>".encode("iso-8859-1")
    item = {
        "id": "m1",
        "threadId": "t1",
        "labelIds": ["INBOX"],
        "payload": part(
            "multipart/related",
            headers=[
                h("FROM", "=?utf-8?q?J=C3=BCrgen?= <J@Example.COM>"),
                h("To", "a@x.test, \"B, Person\" <b@x.test>"),
                h("CC", "c@x.test"),
                h("Subject", "=?UTF-8?B?UmU6IMOcYmVy?="),
                h("In-Reply-To", "<parent@x>"),
                h("References", "<root@x>\r\n <parent@x>"),
                h("Date", "Mon, 1 Jan 2024 10:00:00 +0100"),
            ],
            parts=[
                part("text/html", html, headers=[h("Content-Type", "text/html; charset=ISO-8859-1")]),
                part("image/png", headers=[h("Content-ID", "<logo@x>"), h("Content-Disposition", "inline")],
                     filename="logo.png", attachment_id="att-1", size=42),
            ],
        ),
    }
    message = mapping.message_of(item)
    assert message.html == "<p>Grüße <img src=\"cid:logo@x\"></p>"
    assert message.text is None
    assert message.sender.name == "Jürgen" and message.sender.email == "J@Example.COM"
    assert message.sender.normalized == "j@example.com"
    assert [(a.email, a.name) for a in message.to] == [("a@x.test", None), ("b@x.test", "B, Person")]
    assert [a.email for a in message.cc] == ["c@x.test"]
    assert message.subject == "Re: Über"
    assert message.in_reply_to == "<parent@x>"
    assert message.references == ["<root@x>", "<parent@x>"]
    assert message.sent_at == datetime(2024, 1, 1, 9, 0, tzinfo=UTC)  # no internalDate: the Date header
    (logo,) = message.attachments
    assert logo.is_inline and logo.content_id == "logo@x" and logo.provider_attachment_id == "att-1"
    assert message.folder is Folder.INBOX and message.is_read is True


def test_small_attachment_with_inline_data_and_forwarded_message():
    forwarded = part(
        "message/rfc822",
        parts=[part("text/plain", b"the forwarded text")],
    )
    item = {
        "id": "m2",
        "labelIds": ["SENT", "UNREAD"],
        "payload": part(
            "multipart/mixed",
            headers=[h("Subject", "fwd")],
            parts=[
                part("text/plain", b"see below"),
                part("text/plain", b"a,b\n1,2\n", filename="data.csv",
                     headers=[h("Content-Disposition", 'attachment; filename="data.csv"')]),
                forwarded,
            ],
        ),
    }
    message = mapping.message_of(item)
    assert message.text == "see below"  # not the forwarded message's text
    (csv,) = message.attachments
    assert csv.filename == "data.csv" and csv.content == b"a,b\n1,2\n" and csv.provider_attachment_id is None
    assert message.folder is Folder.SENT and message.is_read is False
    assert message.thread_key is None and message.sender is None and message.message_id is None


def test_malformed_bodies_do_not_break_the_message():
    item = {"id": "m3", "payload": {"mimeType": "text/plain", "body": {"data": "!!!not base64!!!"},
                                    "headers": [h("Subject", "s"), h("Message-Id", "bare-id@x")]}}
    message = mapping.message_of(item)
    assert message.text is None and message.subject == "s"
    assert message.message_id == "<bare-id@x>"
    assert mapping.message_of({"id": "m4"}).subject == ""  # no payload at all
    with pytest.raises(ValueError):
        mapping.message_of({"payload": {}})


def test_unknown_charset_falls_back_to_utf8():
    item = {"id": "m5", "payload": part("text/plain", "é".encode(), headers=[h("Content-Type", "text/plain; charset=x-nope")])}
    assert mapping.message_of(item).text == "é"


def test_deeply_nested_parts_are_bounded():
    node = part("text/plain", b"deep")
    for _ in range(200):
        node = part("multipart/mixed", parts=[node])
    assert mapping.message_of({"id": "deep", "payload": node}).text is None


@pytest.mark.parametrize(
    "labels, folder, synced",
    [
        ({"INBOX"}, Folder.INBOX, True),
        ({"SENT"}, Folder.SENT, True),
        ({"INBOX", "SENT"}, Folder.SENT, True),
        ({"INBOX", "TRASH"}, Folder.INBOX, False),
        ({"SENT", "DRAFT"}, Folder.SENT, False),
        ({"CATEGORY_PROMOTIONS"}, Folder.INBOX, False),
    ],
)
def test_labels(labels, folder, synced):
    assert mapping.folder_of(labels) is folder
    assert mapping.is_synced(labels) is synced


def test_history_ids():
    assert mapping.history_id_of("9876543210") == "9876543210"
    assert mapping.history_id_of(1234567890) == "1234567890"  # the watch doc sample's bare number
    assert mapping.history_id_of("abc") is None and mapping.history_id_of(True) is None
    assert mapping.later_history_id("99", "100") == "100"  # numeric, not lexical
