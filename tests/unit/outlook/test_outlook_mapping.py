"""Graph JSON -> domain mapping, on every published Graph message / delta sample."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync_engine.domain import Address, ChangeKind, Folder
from sync_engine.providers.outlook import mapping


def test_graph_message_get_sample(sample):
    item = sample("graph_message.json")
    msg = mapping.message_of(item, Folder.INBOX)
    assert msg.provider_id == "AAMkADhMGAAA="
    assert msg.thread_key == "AAQkADOUpag6yWs="
    assert msg.folder is Folder.INBOX
    assert msg.message_id == "<MWHPR6E1BE060@MWHPR1120.namprd22.prod.outlook.com>"
    assert msg.subject == "9/9/2018: concert"
    # Mixed case kept as published; comparisons use the normalized form.
    assert msg.sender == Address("adelev@contoso.OnMicrosoft.com", "Adele Vance")
    assert msg.sender.normalized == "adelev@contoso.onmicrosoft.com"
    assert [a.normalized for a in msg.to] == ["alexw@contoso.onmicrosoft.com"]
    assert msg.to[0].name == "Alex Wilber"
    assert msg.cc == [] and msg.bcc == []
    assert msg.sent_at == datetime(2018, 9, 9, 3, 15, 6, tzinfo=UTC)
    assert msg.is_read is True and msg.is_draft is False
    assert msg.html is not None and "The group represents Nevada." in msg.html
    assert msg.text is None
    assert msg.in_reply_to is None and msg.references == []
    assert msg.attachments == []


def test_text_body_with_emoji_surrogates(sample):
    item = sample("graph_message_text_uniqueBody.json")
    msg = mapping.message_of(item, Folder.INBOX)
    assert msg.html is None
    assert msg.text is not None
    assert msg.text.count("\U0001F60A") == 5  # the \ud83d\ude0a pairs, decoded
    assert msg.text.startswith("Welcome to our group, Dana!")
    assert msg.text.encode("utf-8")  # no lone surrogates survive
    # Missing fields are tolerated.
    assert msg.sender is None and msg.to == [] and msg.sent_at is None
    assert msg.thread_key is None and msg.message_id is None
    assert msg.is_read is False


def test_createreply_draft_sample(sample):
    item = sample("graph_createreply_mime_response.json")
    msg = mapping.message_of(item, Folder.SENT)
    assert msg.is_draft is True
    assert msg.folder is Folder.SENT
    assert msg.thread_key == "SDSFSmFSDGI5LWZhYjc4fsdfsd="
    assert msg.message_id == "<AAAAAAAAAA@AAAAAAA0001AA0000.codcod00.prod.outlook.com>"
    assert msg.sender.normalized == "alexw@contoso.com"
    assert msg.to == [Address("MeganB@contoso.com", "Megan Bowen")]
    assert msg.sent_at == datetime(2021, 2, 28, 7, 15, tzinfo=UTC)
    assert msg.text.startswith("Hi, Megan.")


def test_internet_message_headers_sample(sample):
    item = sample("graph_message_internetMessageHeaders.json")
    headers = mapping.header_map(item)
    assert headers["x-custom-header-group-name"] == "Washington"
    assert headers["x-custom-header-group-id"] == "WA001"
    assert headers["content-type"] == "multipart/report"
    # Only id + headers: not enough to classify as a change -> caller fetches it.
    assert mapping.change_of(item, Folder.INBOX) is None


def test_threading_headers_are_read_from_internet_message_headers():
    item = {
        "id": "m1",
        "conversationId": "c1",
        "body": {"contentType": "Text", "content": "hi"},
        "internetMessageHeaders": [
            {"name": "In-Reply-To", "value": "<parent@example.com>"},
            {"name": "references", "value": "<root@example.com>\r\n <parent@example.com>"},
            {"name": "Message-ID", "value": "<self@example.com>"},
        ],
    }
    msg = mapping.message_of(item, Folder.INBOX)
    assert msg.in_reply_to == "<parent@example.com>"
    assert msg.references == ["<root@example.com>", "<parent@example.com>"]
    assert msg.message_id == "<self@example.com>"  # from headers when internetMessageId is absent
    assert msg.text == "hi"


def test_delta_page_samples(sample):
    page1 = sample("graph_delta_page1.json")
    page2 = sample("graph_delta_page2.json")
    final = sample("graph_delta_final.json")
    changes = [mapping.change_of(i, Folder.INBOX) for p in (page1, page2, final) for i in p["value"]]
    # The doc's delta round selected only subject, sender, isRead: these entries are
    # partial, and carry the read state.
    assert [c.kind for c in changes] == [ChangeKind.READ_STATE] * 5
    assert [(c.provider_id, c.is_read) for c in changes] == [
        ("AAMkADNkNAAASq35xAAA=", False),
        ("AQMkADNkNAAAVRMKAAAAA==", True),
        ("AQMkADNkNAAAgWkAAAA", True),
        ("AQMkADNkNAAAgWJAAAA", True),
        ("AAMkADk0MGFkODE3LWEAAA=", True),
    ]
    assert "@odata.nextLink" in page1 and "@odata.deltaLink" in final


def test_delta_removed_sample_with_string_isread(sample):
    page = sample("graph_delta_removed.json")
    removed, updated = (mapping.change_of(i, Folder.INBOX) for i in page["value"])
    assert removed.kind is ChangeKind.REMOVED
    assert removed.provider_id == "AAMkADk0MGFkODE3LWE4MmYtNDRhOS0Dh_6qB-pB2Sa2pUum19a6YAAKnLuxoAAA="
    assert removed.message is None
    assert updated.kind is ChangeKind.READ_STATE
    assert updated.provider_id == "AAMkADNkNAAASq35xAAA="
    assert updated.is_read is True  # "isRead": "true" (a string in the published sample)


def test_delta_api_example_with_placeholders(sample):
    page = sample("graph_message_delta_api_example.json")
    (entry,) = page["value"]
    # The published entry has no id: it cannot become a change.
    with pytest.raises(ValueError):
        mapping.change_of(entry, Folder.INBOX)
    change = mapping.change_of({**entry, "id": "X1"}, Folder.SENT)
    assert change.kind is ChangeKind.UPSERT
    msg = change.message
    assert msg.subject == "subject-value"
    assert msg.sent_at is None  # "datetime-value" placeholder tolerated
    assert msg.message_id == "<internetMessageId-value>"
    assert msg.text == "content-value" and msg.html is None
    assert msg.folder is Folder.SENT
    assert mapping.may_have_attachments(entry) is True


def test_full_delta_entry_is_an_upsert_and_string_booleans(sample):
    item = dict(sample("graph_message.json"))
    item["isRead"] = "false"
    item["isDraft"] = "true"
    item["hasAttachments"] = "true"
    change = mapping.change_of(item, Folder.INBOX)
    assert change.kind is ChangeKind.UPSERT
    assert change.provider_id == "AAMkADhMGAAA="
    assert change.message.is_read is False and change.message.is_draft is True
    assert mapping.may_have_attachments(item) is True


@pytest.mark.parametrize(
    "value, expected",
    [(True, True), (False, False), ("true", True), ("True", True), ("false", False), (None, False), (1, True)],
)
def test_as_bool(value, expected):
    assert mapping.as_bool(value) is expected


def test_as_datetime_variants():
    assert mapping.as_datetime("2016-11-20T18:23:45.9356913Z") == datetime(
        2016, 11, 20, 18, 23, 45, 935691, tzinfo=UTC
    )
    assert mapping.as_datetime("2019-09-18T00:52:45.9696658+00:00").microsecond == 969665
    assert mapping.as_datetime("2021-04-23T18:13:44") == datetime(2021, 4, 23, 18, 13, 44, tzinfo=UTC)
    assert mapping.as_datetime("datetime-value") is None
    assert mapping.as_datetime(None) is None


def test_addresses_without_an_address_are_dropped():
    recipients = [
        {"emailAddress": {"name": "{ME}"}},
        {"emailAddress": {"address": "  Bob@Example.COM ", "name": ""}},
        {"emailAddress": None},
        "junk",
    ]
    assert mapping.addresses_of(recipients) == [Address("Bob@Example.COM", None)]
    assert mapping.address_of({"emailAddress": {"name": "{ME}"}}) is None


def test_sender_falls_back_to_sender_property():
    item = {"id": "m", "sender": {"emailAddress": {"address": "s@x.org"}}, "body": {"contentType": "text", "content": ""}}
    assert mapping.message_of(item, Folder.INBOX).sender == Address("s@x.org")


def test_inline_cid_images_warrant_an_attachment_listing():
    item = {"hasAttachments": False, "body": {"contentType": "html", "content": '<img src="cid:image001.png@01D">'}}
    assert mapping.may_have_attachments(item) is True
    item = {"hasAttachments": False, "body": {"contentType": "html", "content": "<p>no images</p>"}}
    assert mapping.may_have_attachments(item) is False


def test_attachment_metadata_and_content():
    meta = mapping.attachment_of(
        {"id": "a1", "name": "r.pdf", "contentType": "application/pdf", "size": 1234, "isInline": False}
    )
    assert (meta.provider_attachment_id, meta.filename, meta.content_type, meta.size) == (
        "a1",
        "r.pdf",
        "application/pdf",
        1234,
    )
    assert meta.content is None and meta.is_inline is False
    full = mapping.attachment_of({"id": "a2", "name": "a.txt", "contentBytes": "SGVsbG8gV29ybGQh", "isInline": "true"})
    assert full.content == b"Hello World!" and full.is_inline is True
    assert full.content_type == "application/octet-stream" and full.size == 0


def test_outgoing_recipients_have_the_published_shape(sample):
    published = sample("graph_reply_request.json")["message"]["toRecipients"]
    ours = [mapping.recipient(Address("samanthab@contoso.onmicrosoft.com", "Samantha Booth")),
            mapping.recipient(Address("randiw@contoso.onmicrosoft.com", "Randi Welch"))]
    assert ours == published


def test_file_attachment_has_the_published_shape(sample):
    from sync_engine.domain import OutgoingAttachment

    published = sample("graph_sendmail_with_attachment_request.json")["message"]["attachments"][0]
    ours = mapping.file_attachment(OutgoingAttachment("attachment.txt", "text/plain", b"Hello World!"))
    assert ours == published
