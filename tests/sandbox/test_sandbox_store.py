"""The provider-neutral store, mail flow and MIME, without HTTP."""

from __future__ import annotations

import email
import email.policy

from sandbox import mailflow, mime
from sandbox.mailflow import Outgoing
from sandbox.store import Address, MailboxEvent, MessageEvent, Store
from tests.support.samples import SAMPLES


def _store() -> tuple[Store, list]:
    store, events = Store(), []
    store.add_listener(events.append)
    return store, events


def test_mailboxes_are_case_insensitive_and_provider_styled_ids():
    store, _ = _store()
    outlook, created = store.create_mailbox("outlook", "Alice@Contoso.test", "Alice")
    same, again = store.create_mailbox("outlook", "alice@contoso.TEST")
    assert created and not again and same is outlook
    gmail, _ = store.create_mailbox("gmail", "g@gmail.test")
    m1 = mailflow.receive(store, outlook, Outgoing(from_=Address("b@x.test"), subject="s", text="t"))
    m2 = mailflow.receive(store, gmail, Outgoing(from_=Address("b@x.test"), subject="s", text="t"))
    assert m1.id.startswith("AAkALg") and m1.rest_id.startswith("AAMkAD")
    assert len(m2.id) == 16 and int(m2.id, 16) >= 0 and m2.rest_id == m2.id
    assert m2.labels == {"INBOX", "UNREAD"}


def test_change_log_records_folders_labels_and_properties():
    store, events = _store()
    box, _ = store.create_mailbox("gmail", "g@gmail.test")
    message = mailflow.receive(store, box, Outgoing(from_=Address("b@x.test"), subject="s", text="t"))
    store.update_message(box, message, is_read=True)
    assert store.update_message(box, message, is_read=True) is None  # no-op: no change logged
    store.update_message(box, message, folder="deleteditems")
    store.delete_message(box, message)
    kinds = [(c.seq, c.kind, c.folder_before, c.folder_after, sorted(c.changed)) for c in box.changes]
    assert kinds == [
        (1, "added", None, "inbox", []),
        (2, "updated", "inbox", "inbox", ["is_read"]),
        (3, "updated", "inbox", "deleteditems", ["folder"]),
        (4, "deleted", "deleteditems", None, []),
    ]
    assert box.changes[1].labels_before == {"INBOX", "UNREAD"} and box.changes[1].labels_after == {"INBOX"}
    assert [c.seq for c in box.changes_since(2)] == [3, 4]
    assert [type(e) for e in events] == [MailboxEvent, MessageEvent, MessageEvent, MessageEvent, MessageEvent]


def test_threading_by_references_and_delivery():
    store, _ = _store()
    alice, _ = store.create_mailbox("outlook", "alice@contoso.test", "Alice")
    carol, _ = store.create_mailbox("gmail", "carol@gmail.test", "Carol")
    sent = mailflow.send(store, alice, Outgoing(to=[Address("carol@gmail.test")], bcc=[Address("audit@x.test")], subject="Hi", text="x"))
    (copy,) = carol.in_folder("inbox")
    assert copy.internet_message_id == sent.internet_message_id and copy.bcc == []
    assert b"Bcc:" not in copy.mime and b"Bcc: audit@x.test" in sent.mime
    reply = mailflow.send(store, carol, mailflow.reply_outgoing(carol, copy, "Sure"))
    assert reply.conversation_id == copy.conversation_id
    (answer,) = alice.in_folder("inbox")
    assert answer.conversation_id == sent.conversation_id and answer.references == [sent.internet_message_id]
    unrelated = mailflow.receive(store, alice, Outgoing(from_=Address("z@x.test"), subject="Hi", text="x"))
    assert unrelated.conversation_id != sent.conversation_id  # same subject alone does not thread


def test_rendered_mime_keeps_threading_headers_and_parses_back():
    store, _ = _store()
    box, _ = store.create_mailbox("outlook", "alice@contoso.test", "Alice Ä")
    draft = mailflow.create_draft(store, box, Outgoing(
        to=[Address("bob@x.test", "Bob, Jr.")], subject="Ünïcode subject", html="<p>Hello <b>Bob</b></p>",
        in_reply_to="<a@x>", references=["<root@x>", "<a@x>"],
        attachments=[mailflow.new_attachment(box, "a.pdf", "application/pdf", b"%PDF-1.4")],
    ))
    parsed_std = email.message_from_bytes(draft.mime, policy=email.policy.default)
    for header in ("Message-ID", "In-Reply-To", "References", "Date", "From", "To", "Subject"):
        assert parsed_std[header], header
    parsed = mime.parse(draft.mime)
    assert parsed.subject == "Ünïcode subject" and parsed.to[0].name == "Bob, Jr."
    assert parsed.references == ["<root@x>", "<a@x>"] and parsed.in_reply_to == "<a@x>"
    assert parsed.html and "Hello" in parsed.html and "Hello Bob" in (parsed.text or "")
    assert [(a.filename, a.data) for a in parsed.attachments] == [("a.pdf", b"%PDF-1.4")]


def test_parse_survives_malformed_samples():
    for path in sorted(SAMPLES.glob("*.eml")):
        parsed = mime.parse(path.read_bytes())
        assert isinstance(parsed.subject, str), path.name
    long_id = mime.parse((SAMPLES / "nylas_raw_message_with_long_message_id.eml").read_bytes())
    assert long_id.message_id == "<2342SFSDT45T423FSDFSDF@pervenche-5523>"  # padding after the id ignored
    inline = mime.parse((SAMPLES / "nylas_raw_message_with_outlook_emoji_inline.eml").read_bytes())
    assert any(a.is_inline and a.content_type == "image/png" for a in inline.attachments)
