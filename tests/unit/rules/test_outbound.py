"""What a send must satisfy before it is queued (rules/outbound.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sync_engine.domain import OutgoingAttachment
from sync_engine.rules.outbound import (
    MAX_BODY_BYTES,
    MAX_BULK_RECIPIENTS,
    MAX_RECIPIENTS,
    MAX_SUBJECT_CHARS,
    Draft,
    all_recipients,
    check_bulk,
    check_draft,
    missing_contacts,
)

OK = Draft(subject="Viewing", html=None, text="3pm?", to=["ann@client.example"])


def draft(**changes: object) -> Draft:
    return replace(OK, **changes)  # type: ignore[arg-type]


def code(d: Draft) -> str | None:
    problem = check_draft(d)
    return problem.code if problem else None


def test_a_plain_email_passes() -> None:
    assert check_draft(OK) is None


@pytest.mark.parametrize("breaker", ["\r", "\n", "\x00", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"])
def test_line_breaking_characters_are_refused_in_every_header_value(breaker: str) -> None:
    assert code(draft(subject=f"Hello{breaker}Bcc: x@evil.example")) == "INVALID_HEADER"
    assert code(draft(to=[f"ann@client.example{breaker}"])) == "INVALID_EMAIL"
    assert code(draft(cc=[f"bob{breaker}@client.example"])) == "INVALID_EMAIL"
    assert code(draft(bcc=[f"x@client.example{breaker}y"])) == "INVALID_EMAIL"
    pdf = OutgoingAttachment(f"a{breaker}.pdf", "application/pdf", b"%PDF-1.4 x")
    assert code(draft(attachments=[pdf])) == "INVALID_ATTACHMENT"


def test_limits() -> None:
    assert code(draft(to=[])) == "NO_RECIPIENT"
    many = [f"c{i}@client.example" for i in range(MAX_RECIPIENTS + 1)]
    assert code(draft(to=many[:50], cc=many[50:90], bcc=many[90:])) == "TOO_MANY_RECIPIENTS"
    assert code(draft(to=many[:50], cc=many[50:90], bcc=many[90:MAX_RECIPIENTS])) is None
    # the same address in To and Cc counts once
    assert code(draft(to=many[:MAX_RECIPIENTS], cc=[many[0].upper()])) is None
    assert code(draft(subject="x" * (MAX_SUBJECT_CHARS + 1))) == "SUBJECT_TOO_LONG"
    assert code(draft(subject="x" * MAX_SUBJECT_CHARS)) is None
    assert code(draft(text=None, html=None)) == "EMPTY_BODY"
    assert code(draft(text="é" * (MAX_BODY_BYTES // 2 + 1))) == "BODY_TOO_LARGE"  # bytes, not characters
    assert code(draft(attachments=[OutgoingAttachment("a.pdf", "application/pdf", b"MZ\x90\x00")])) == \
        "ATTACHMENT_CONTENT_MISMATCH"
    assert code(draft(attachments=[OutgoingAttachment("a.exe", "application/octet-stream", b"MZ")])) == \
        "ATTACHMENT_TYPE_NOT_ALLOWED"


def test_bulk_limits() -> None:
    assert check_bulk([], "s", None, "t").code == "NO_RECIPIENT"  # type: ignore[union-attr]
    too_many = [f"c{i}@client.example" for i in range(MAX_BULK_RECIPIENTS + 1)]
    assert check_bulk(too_many, "s", None, "t").code == "TOO_MANY_RECIPIENTS"  # type: ignore[union-attr]
    assert check_bulk(too_many[:-1], "s", None, "t") is None
    assert check_bulk(["not-an-address"], "s", None, "t").field == "recipients"  # type: ignore[union-attr]
    assert check_bulk(["a@b.example"], "s\u2028x", None, "t").code == "INVALID_HEADER"  # type: ignore[union-attr]


def test_recipients_and_contacts() -> None:
    d = draft(to=["A@x.example"], cc=["a@x.example", "b@x.example"], bcc=["B@X.example", "c@x.example"])
    assert all_recipients(d) == ["A@x.example", "b@x.example", "c@x.example"]
    assert missing_contacts(["A@x.example", "z@x.example"], {"a@x.example"}) == ["z@x.example"]


def test_attachment_content_types_must_be_what_the_mime_builders_take() -> None:
    for bad in ("pdf", "application/pdf; name=x.pdf", "application/pdf ", "application/"):
        att = OutgoingAttachment("a.pdf", bad, b"%PDF-1.4 x")
        assert code(draft(attachments=[att])) == "INVALID_ATTACHMENT", bad
    assert code(draft(attachments=[OutgoingAttachment("a.pdf", "application/pdf", b"%PDF-1.4 x")])) is None


@pytest.mark.parametrize(("from_", "problem"), [
    (None, None), ("", None), ("offers@biz.example", None), ("Offers <offers@biz.example>", None),
    ("not an address", "INVALID_EMAIL"), ("Offers\u2028 <offers@biz.example>", "INVALID_HEADER"),
    ("a\x01b@biz.example", "INVALID_EMAIL"),
])
def test_a_bulk_from_is_checked(from_: str | None, problem: str | None) -> None:
    found = check_bulk(["a@b.example"], "s", None, "t", from_)
    assert (found.code if found else None) == problem
