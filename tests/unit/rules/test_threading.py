from sync_engine.domain import Address, Folder, MailMessage
from sync_engine.rules.threading import (
    match_thread,
    normalize_message_id,
    parse_references,
    referenced_ids,
    references_for_reply,
    reply_subject,
)


def mail(thread_key=None, in_reply_to=None, references=()):
    return MailMessage(provider_id="x", thread_key=thread_key, folder=Folder.INBOX, message_id="<new@x>",
                       in_reply_to=in_reply_to, references=list(references), subject="s", sender=Address("a@b.c"),
                       to=[], cc=[], bcc=[], sent_at=None, is_read=False)


def test_provider_conversation_id_wins():
    assert match_thread(mail(thread_key="conv-1", in_reply_to="<a@x>"), {"conv-1": "T1"}, {"<a@x>": "T2"}) == "T1"


def test_in_reply_to_then_references_newest_first():
    m = mail(thread_key="unknown", in_reply_to=None, references=["<old@x>", "<newer@x>"])
    assert referenced_ids(m) == ["<newer@x>", "<old@x>"]
    assert match_thread(m, {}, {"<old@x>": "T-old", "<newer@x>": "T-new"}) == "T-new"
    assert match_thread(mail(in_reply_to="<p@x>"), {}, {"<p@x>": "T"}) == "T"


def test_no_match_gives_none():
    assert match_thread(mail(thread_key="k", in_reply_to="<p@x>"), {}, {}) is None


def test_message_id_normalisation():
    assert normalize_message_id("abc@x") == "<abc@x>"
    assert normalize_message_id("  <abc@x> ") == "<abc@x>"
    assert normalize_message_id("") is None
    assert parse_references("<a@x>\r\n <b@y>") == ["<a@x>", "<b@y>"]


def test_reply_headers_and_subject():
    assert references_for_reply("<p@x>", ["<r@x>"]) == ["<r@x>", "<p@x>"]
    assert reply_subject("Quote") == "Re: Quote"
    assert reply_subject("RE: Quote") == "RE: Quote"
