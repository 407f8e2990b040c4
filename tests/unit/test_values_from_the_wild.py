"""Values real mail carries that a mapper or a column must not take as they are: subjects
that decode to several lines (both providers' mappers), NUL characters and lone
surrogates (sync_engine.content.storable)."""

from __future__ import annotations

import base64

from sync_engine.content import sanitize_html, snippet, storable
from sync_engine.domain import Folder
from sync_engine.providers.gmail import mapping as gmail
from sync_engine.providers.outlook import mapping as outlook

# KOI8-R encoded word of "Алфавит\n" (tests/samples/mime-corpus/mozilla_sample04.eml).
KOI8_SUBJECT = "=?koi8-r?B?4czGwdfJ1Ao=?="


def test_a_subject_is_one_line_from_both_providers() -> None:
    graph = outlook.message_of({"id": "m1", "subject": "Алфавит\n", "body": {"contentType": "text", "content": "x"}},
                               Folder.INBOX)
    assert graph.subject == "Алфавит"
    assert outlook.message_of({"id": "m2", "subject": "two\r\nlines\u2028here"}, Folder.INBOX).subject == "two  lines here"

    payload = {"mimeType": "text/plain", "headers": [{"name": "Subject", "value": KOI8_SUBJECT}],
               "body": {"data": base64.urlsafe_b64encode(b"x").decode()}}
    assert gmail.message_of({"id": "g1", "labelIds": ["INBOX"], "payload": payload}).subject == "Алфавит"


def test_storable_text_has_no_nul_and_no_lone_surrogate() -> None:
    assert storable("a\x00b") == "ab"
    assert storable("x\udcc3y\ud83d") == "x\ufffdy\ufffd"
    assert storable("Grüße 😊") == "Grüße 😊" and storable(None) is None and storable("") == ""
    assert sanitize_html("<p>a\x00\udcc3</p>") == "<p>a\ufffd</p>"
    assert snippet("one\x00two", None) == "onetwo"
