"""Outgoing MIME: headers, threading, bodies, attachments, and header-injection refusal."""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import UTC, datetime

import pytest

from sync_engine.domain import Address, OutgoingAttachment, OutgoingMessage
from sync_engine.providers.gmail import compose


def outgoing(**overrides):
    fields = dict(
        message_id="<crm-1@emailsync.test>",
        sender=Address("me@gmail.test", "Me Myself"),
        to=[Address("client@example.com", "Client")],
        subject="Quote",
        html="<p>Hello</p>",
        text="Hello",
    )
    fields.update(overrides)
    return OutgoingMessage(**fields)


def parsed(message: OutgoingMessage):
    raw = compose.raw_of(compose.build_mime(message, now=datetime(2024, 5, 1, 12, 0, tzinfo=UTC)))
    data = base64.urlsafe_b64decode(raw)
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    return email.message_from_bytes(data, policy=email.policy.default)


def test_new_message_headers_and_alternative_body():
    mime = parsed(outgoing(cc=[Address("cc@example.com")], bcc=[Address("audit@crm.test")]))
    assert mime["Message-ID"] == "<crm-1@emailsync.test>"
    assert mime["From"] == "Me Myself <me@gmail.test>"
    assert mime["To"] == "Client <client@example.com>"
    assert mime["Cc"] == "cc@example.com"
    assert mime["Bcc"] == "audit@crm.test"  # Gmail reads it for delivery and strips it
    assert mime["Subject"] == "Quote"
    assert mime["Date"] == "Wed, 01 May 2024 12:00:00 +0000"
    assert mime["In-Reply-To"] is None and mime["References"] is None
    assert mime.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mime.iter_parts()] == ["text/plain", "text/html"]
    assert mime.get_body(("plain",)).get_content().strip() == "Hello"
    assert mime.get_body(("html",)).get_content().strip() == "<p>Hello</p>"


def test_reply_threading_headers_and_subject_kept():
    mime = parsed(outgoing(subject="Re: Quote", in_reply_to="<parent@x>", references=["<root@x>", "<parent@x>"]))
    assert mime["Subject"] == "Re: Quote"
    assert mime["In-Reply-To"] == "<parent@x>"
    assert mime["References"].split() == ["<root@x>", "<parent@x>"]


def test_references_end_with_the_parent():
    message = outgoing(in_reply_to="<p@x>", references=["<root@x> <mid@x>"])
    assert compose.references_of(message) == ["<root@x>", "<mid@x>", "<p@x>"]
    assert compose.references_of(outgoing(in_reply_to="<p@x>")) == ["<p@x>"]
    assert compose.references_of(outgoing(in_reply_to="<p@x>", references=["<p@x>", "<z@x>"])) == ["<z@x>", "<p@x>"]


def test_single_bodies_and_attachments():
    html_only = parsed(outgoing(text=None))
    assert html_only.get_content_type() == "text/html"
    text_only = parsed(outgoing(html=None))
    assert text_only.get_content_type() == "text/plain"
    pdf = b"%PDF-1.4\n%%EOF\n"
    with_files = parsed(outgoing(attachments=[OutgoingAttachment("Angebot Müller.pdf", "application/pdf", pdf)]))
    assert with_files.get_content_type() == "multipart/mixed"
    (att,) = list(with_files.iter_attachments())
    assert att.get_filename() == "Angebot Müller.pdf"
    assert att.get_content_type() == "application/pdf"
    assert att.get_content() == pdf


def test_non_ascii_names_and_subject_are_encoded():
    mime = parsed(outgoing(subject="Grüße 👋", sender=Address("me@gmail.test", "Jürgen Ö")))
    assert mime["Subject"] == "Grüße 👋"
    assert mime["From"].addresses[0].display_name == "Jürgen Ö"


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Hi\r\nBcc: victim@example.com"},
        {"subject": "Hi\nX-Evil: 1"},
        {"message_id": "<a@b>\r\nX-Evil: 1"},
        {"in_reply_to": "<a@b>\nBcc: x@y"},
        {"references": ["<a@b>", "<c@d>\r\nBcc: x@y"]},
        {"to": [Address("client@example.com", "Name\r\nBcc: x@y")]},
        {"to": [Address("client@example.com\r\nBcc: x@y")]},
        {"cc": [Address("not-an-address")]},
        {"bcc": [Address("a@b.c, d@e.f")]},
        {"attachments": [OutgoingAttachment("a.pdf\r\nX: y", "application/pdf", b"x")]},
        {"attachments": [OutgoingAttachment("a.pdf", "application/pdf\r\nX: y", b"x")]},
        {"attachments": [OutgoingAttachment("a.pdf", "pdf", b"x")]},
        {"thread_key": "t\r\n1"},
        {"to": [], "cc": [], "bcc": []},
        {"message_id": "no brackets and spaces"},
        {"subject": "nul\x00byte"},
    ],
)
def test_header_injection_and_unusable_messages_are_refused(overrides):
    with pytest.raises(ValueError):
        compose.build_mime(outgoing(**overrides))
