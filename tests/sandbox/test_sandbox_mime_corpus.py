"""The sandbox reads real-world and broken MIME as the providers show it (sandbox/mime.py):
attached messages stay attachments, multiparts without parts show their text, raw 8-bit
headers and unknown charset labels come out readable, never as surrogate escapes that
no JSON consumer could store."""

from __future__ import annotations

from pathlib import Path

from sandbox import mime

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CORPUS = sorted([*(SAMPLES / "mime-corpus").glob("*.eml"), *(SAMPLES / "provider-samples").glob("*.eml")])


def _encodable(value: str | None) -> bool:
    try:
        (value or "").encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def test_every_corpus_message_parses_to_storable_text() -> None:
    assert len(CORPUS) >= 40
    for path in CORPUS:
        parsed = mime.parse(path.read_bytes())
        people = [p for p in (parsed.from_, *parsed.to, *parsed.cc) if p is not None]
        values = [parsed.subject, parsed.text, parsed.html, *(a.filename for a in parsed.attachments),
                  *(p.address for p in people), *(p.name for p in people)]
        assert all(_encodable(v) for v in values), path.name


def test_an_attached_message_is_one_attachment_and_never_the_body() -> None:
    forward = mime.parse((SAMPLES / "mime-corpus" / "php_issue158a.eml").read_bytes())
    assert [(a.filename, a.content_type) for a in forward.attachments] == [("Test 5", "message/rfc822")]
    assert forward.text is None and "RFC 822 forward" in (forward.html or "")
    assert b"An original PLAIN TEXT message body" in forward.attachments[0].data

    named = mime.parse((SAMPLES / "mime-corpus" / "mozilla_attachedMessageWithMissingHeaders.eml").read_bytes())
    assert [a.filename for a in named.attachments] == ["message1.eml"]

    # A mailer base64-encoded the attached message (RFC 2046 forbids it): its bytes are decoded.
    encoded = mime.parse((SAMPLES / "mime-corpus" / "stalwart_nested_encoded_message.eml").read_bytes())
    assert [a.data for a in encoded.attachments] == [b"Subject: inner\n\ninner body\n"]
    assert (encoded.text or "").strip() == "after"

    digest = mime.parse((SAMPLES / "mime-corpus" / "cpython_msg_02.eml").read_bytes())
    assert len(digest.attachments) == 5 and all(a.content_type == "message/rfc822" for a in digest.attachments)
    assert (digest.text or "").startswith("Send Ppp mailing list submissions")


def test_a_multipart_without_parts_shows_its_text() -> None:
    parsed = mime.parse((SAMPLES / "mime-corpus" / "dovecot_malformed_002.eml").read_bytes())
    assert parsed.text == "body\n" and parsed.attachments == []


def test_raw_8bit_headers_and_unknown_charset_labels_are_read() -> None:
    raw = (b"From: J\xc3\xbcrgen <j@x.test>\r\nTo: =?utf-8?q?M=C3=BCller?= <m@x.test>\r\n"
           b"Subject: Gr\xfc\xdfe aus K\xf6ln\r\nContent-Type: text/plain; charset=x-mac-cyrillic\r\n\r\n\x8f\xe0\xa8")
    parsed = mime.parse(raw)
    assert parsed.from_ is not None and parsed.from_.name == "Jürgen"  # UTF-8 (RFC 6532)
    assert parsed.subject == "Grüße aus Köln"  # not UTF-8: Windows-1252
    assert parsed.to[0].name == "Müller"
    assert parsed.text == b"\x8f\xe0\xa8".decode("mac-cyrillic")
