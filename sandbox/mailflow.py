"""Mail flow shared by every provider: receive, draft, send, reply, deliver.

These are the semantics a real mail system has regardless of its API:
- threading: a message joins the conversation of a message in the same mailbox
  whose Message-ID it names in In-Reply-To/References; replies created through
  the API keep the original's conversation; otherwise a new conversation starts;
- delivery: mail sent to an address that is a sandbox mailbox (of either
  provider) lands, unread, in that mailbox's inbox as a separate copy.
Provider modules translate their wire formats into calls of this module.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sandbox import ids, mime
from sandbox.store import Address, Attachment, Mailbox, Message, Store, new_message


@dataclass
class Outgoing:
    """The author-controlled fields of a message being composed."""

    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    subject: str = ""
    html: str | None = None
    text: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    custom_headers: list[tuple[str, str]] = field(default_factory=list)
    internet_message_id: str | None = None
    importance: str = "normal"
    from_: Address | None = None  # defaults to the mailbox owner when sending


def new_attachment(mailbox: Mailbox, filename: str, content_type: str, data: bytes, **extra: object) -> Attachment:
    att_id = ids.graph_rest_id() if mailbox.provider == "outlook" else ids.opaque_token("ANGjdJ", 60)
    return Attachment(id=att_id, filename=filename, content_type=content_type, data=data, **extra)  # type: ignore[arg-type]


def owner(mailbox: Mailbox) -> Address:
    return Address(address=mailbox.address, name=mailbox.name)


_SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv|antw|wg|tr)\s*(\[\d+\])?\s*:\s*)+", re.I)


def thread_subject(subject: str) -> str:
    """A subject without reply/forward prefixes, for Gmail's same-subject rule."""
    return " ".join(_SUBJECT_PREFIX.sub("", subject or "").split()).lower()


def conversation_for(
    mailbox: Mailbox, in_reply_to: str | None, references: Iterable[str], subject: str | None = None,
) -> str | None:
    """The conversation a new message joins, by the Message-IDs it refers to.

    Gmail also requires the subject to match (ignoring Re:/Fwd:): a reply whose
    subject was changed starts a new thread there, so for Gmail mailboxes a
    given ``subject`` must match the referenced message's.
    """
    wanted = [in_reply_to] if in_reply_to else []
    wanted += list(reversed(list(references)))  # the most recent reference first
    gmail_rule = mailbox.provider == "gmail" and subject is not None
    for message_id in wanted:
        found = mailbox.by_internet_message_id(message_id)
        if gmail_rule:
            found = [m for m in found if thread_subject(m.subject) == thread_subject(subject or "")]
        if found:
            return found[0].conversation_id
    return None


def _fields_of(out: Outgoing) -> dict[str, object]:
    return {
        "subject": out.subject,
        "to": list(out.to),
        "cc": list(out.cc),
        "bcc": list(out.bcc),
        "reply_to": list(out.reply_to),
        "body_html": out.html,
        "body_text": out.text,
        "in_reply_to": out.in_reply_to,
        "references": list(out.references),
        "attachments": list(out.attachments),
        "custom_headers": list(out.custom_headers),
        "importance": out.importance,
    }


def receive(
    store: Store,
    mailbox: Mailbox,
    mail: Outgoing,
    *,
    raw: bytes | None = None,
    sent: datetime | None = None,
) -> Message:
    """A message from elsewhere arrives in the inbox, unread."""
    now = ids.utcnow()
    fields = _fields_of(mail)
    fields.pop("bcc")  # a recipient never sees the Bcc list
    message = new_message(
        mailbox,
        "inbox",
        **fields,
        from_=mail.from_,
        sender=mail.from_,
        is_read=False,
        sent=sent or now,
        received=now,
        created=now,
        last_modified=now,
    )
    if mail.internet_message_id:
        message.internet_message_id = mail.internet_message_id
    message.conversation_id = (
        conversation_for(mailbox, mail.in_reply_to, mail.references, mail.subject) or message.conversation_id
    )
    message.raw = raw
    return store.add_message(mailbox, message)


def receive_raw(store: Store, mailbox: Mailbox, raw: bytes) -> Message:
    parsed = mime.parse(raw)
    if not parsed.message_id:
        # Receiving servers add a Message-ID when the sender left it out.
        parsed.message_id = ids.internet_message_id()
        raw = f"Message-ID: {parsed.message_id}\r\n".encode() + raw
    mail = Outgoing(
        to=parsed.to,
        cc=parsed.cc,
        reply_to=parsed.reply_to,
        subject=parsed.subject,
        html=parsed.html,
        text=parsed.text,
        attachments=[
            new_attachment(mailbox, a.filename, a.content_type, a.data, content_id=a.content_id, is_inline=a.is_inline)
            for a in parsed.attachments
        ],
        in_reply_to=parsed.in_reply_to,
        references=parsed.references,
        custom_headers=parsed.custom_headers,
        internet_message_id=parsed.message_id,
        from_=parsed.from_ or Address("unknown@sandbox.invalid"),
    )
    return receive(store, mailbox, mail, raw=raw, sent=parsed.date)


def create_draft(store: Store, mailbox: Mailbox, mail: Outgoing, conversation_id: str | None = None) -> Message:
    now = ids.utcnow()
    me = owner(mailbox)
    message = new_message(
        mailbox, "drafts", **_fields_of(mail), from_=me, sender=me, is_read=True, is_draft=True,
        created=now, last_modified=now,
    )
    if mail.internet_message_id:
        message.internet_message_id = mail.internet_message_id
    message.conversation_id = (
        conversation_id
        or conversation_for(mailbox, mail.in_reply_to, mail.references, mail.subject)
        or message.conversation_id
    )
    return store.add_message(mailbox, message)


def update_draft(store: Store, mailbox: Mailbox, draft: Message, **values: object) -> None:
    """Change draft fields; its MIME is rendered again on next use."""
    values["raw"] = None
    store.update_message(mailbox, draft, **values)


def send_draft(store: Store, mailbox: Mailbox, draft: Message) -> Message:
    """The draft becomes the Sent Items copy (same immutable id) and is delivered."""
    now = ids.utcnow()
    update_draft(store, mailbox, draft, folder="sentitems", is_draft=False, is_read=True, sent=now, received=now)
    deliver(store, draft)
    return draft


def send(
    store: Store,
    mailbox: Mailbox,
    mail: Outgoing,
    *,
    save_to_sent: bool = True,
    conversation_id: str | None = None,
    auto_thread: bool = True,
    raw: bytes | None = None,
) -> Message:
    """Send a new message; returns the Sent Items copy (not stored if save_to_sent is false).

    The copy joins ``conversation_id`` if given, else (with ``auto_thread``)
    the conversation its threading headers name; Gmail's API threads a sent
    message only on an explicit threadId, hence ``auto_thread=False``. ``raw``
    keeps the exact bytes the client submitted as the sender's copy.
    """
    now = ids.utcnow()
    me = owner(mailbox)
    message = new_message(
        mailbox, "sentitems", **_fields_of(mail), from_=me, sender=me, is_read=True,
        sent=now, received=now, created=now, last_modified=now,
    )
    if mail.internet_message_id:
        message.internet_message_id = mail.internet_message_id
    threaded = conversation_for(mailbox, mail.in_reply_to, mail.references, mail.subject) if auto_thread else None
    message.conversation_id = conversation_id or threaded or message.conversation_id
    message.raw = raw
    if save_to_sent:
        store.add_message(mailbox, message)
    deliver(store, message)
    return message


def deliver(store: Store, sent: Message) -> list[Message]:
    """Drop a copy into the inbox of every recipient that is a sandbox mailbox."""
    delivered: list[Message] = []
    seen: set[str] = set()
    for person in [*sent.to, *sent.cc, *sent.bcc]:
        key = person.address.lower()
        target = store.mailbox(key)
        if key in seen or target is None:
            continue
        seen.add(key)
        copy = Outgoing(
            to=sent.to, cc=sent.cc, reply_to=sent.reply_to, subject=sent.subject, html=sent.body_html,
            text=sent.body_text, in_reply_to=sent.in_reply_to, references=sent.references,
            custom_headers=sent.custom_headers, internet_message_id=sent.internet_message_id,
            importance=sent.importance, from_=sent.from_,
            attachments=[
                new_attachment(target, a.filename, a.content_type, a.data, content_id=a.content_id, is_inline=a.is_inline)
                for a in sent.attachments
            ],
        )
        delivered.append(receive(store, target, copy, sent=sent.sent))
    return delivered


def reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"RE: {subject}"


def reply_outgoing(mailbox: Mailbox, original: Message, comment: str = "", *, reply_all: bool = False) -> Outgoing:
    """Fields of a reply as Outlook composes it: quoted original, RE: subject, threading headers."""
    mine = original.from_ is not None and original.from_.same(mailbox.address)
    # Replying to one's own sent mail addresses its recipients again.
    to = list(original.to) if mine else list(original.reply_to or ([original.from_] if original.from_ else []))
    cc: list[Address] = []
    if reply_all:
        others = [a for a in [*original.to, *original.cc] if not a.same(mailbox.address)]
        cc = [a for a in others if all(not a.same(t.address) for t in to)]
    quoted = original.body_html if original.body_html is not None else htmllib.escape(original.body_text or "")
    header = (
        f"<b>From:</b> {htmllib.escape(mime.format_address(original.from_) if original.from_ else '')}<br>"
        f"<b>Sent:</b> {ids.iso_z(original.sent or original.created)}<br>"
        f"<b>To:</b> {htmllib.escape(', '.join(mime.format_address(a) for a in original.to))}<br>"
        f"<b>Subject:</b> {htmllib.escape(original.subject)}"
    )
    body = (
        f"<html><body><div>{htmllib.escape(comment)}</div>"
        f'<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg">{header}</div>'
        f"<div>{quoted}</div></body></html>"
    )
    references = [*original.references, original.internet_message_id]
    return Outgoing(
        to=to, cc=cc, subject=reply_subject(original.subject), html=body,
        in_reply_to=original.internet_message_id, references=references,
    )


def create_reply_draft(store: Store, mailbox: Mailbox, original: Message, comment: str = "", *, reply_all: bool = False) -> Message:
    out = reply_outgoing(mailbox, original, comment, reply_all=reply_all)
    return create_draft(store, mailbox, out, conversation_id=original.conversation_id)
