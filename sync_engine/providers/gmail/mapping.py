"""Gmail ``format=full`` messages -> domain types. Pure: no I/O, no clock, no logging.

Payloads are taken as they really come (see provider-samples/SOURCES.md):

- the root part has no ``partId`` (2015-era captures) or ``partId: ""`` (today);
- header names vary in case (``to``/``from``/``subject``, ``Message-Id``);
- multiparts nest (``multipart/mixed`` > ``multipart/alternative`` > text parts);
- bodies are base64url (with or without padding) of the *decoded* part content, in
  the charset named by the part's ``Content-Type``;
- attachments carry ``body.attachmentId`` (content fetched lazily) and a size; small
  ones may carry ``body.data`` inline instead;
- a forwarded message (``message/rfc822``) is an attachment, its text not ours;
- header values may decode to several lines (an encoded word holding a newline): the
  subject is kept on one line, since every reply repeats it in a header.

Labels: ``SENT`` -> ``Folder.SENT``, anything else synced -> ``Folder.INBOX``;
``UNREAD`` absent -> read; ``DRAFT`` -> draft; ``TRASH``/``SPAM`` -> not in the mailbox.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from sync_engine.domain import Address, AttachmentData, Folder, MailMessage
from sync_engine.providers.message_headers import as_str, header_map_of, message_ids_in, normalize_message_id
from sync_engine.rules.addresses import LINE_BREAKING

INBOX, SENT, DRAFT, UNREAD, TRASH, SPAM = "INBOX", "SENT", "DRAFT", "UNREAD", "TRASH", "SPAM"
SYNCED_LABELS: tuple[str, ...] = (INBOX, SENT)

_MAX_DEPTH = 32  # MIME nesting we follow; deeper is hostile


# ---- scalars


def labels_of(item: Mapping[str, Any]) -> set[str]:
    labels = item.get("labelIds")
    return {label for label in labels if isinstance(label, str)} if isinstance(labels, list) else set()


def folder_of(labels: set[str]) -> Folder:
    return Folder.SENT if SENT in labels else Folder.INBOX


def is_synced(labels: set[str]) -> bool:
    """In a synced folder, and neither a draft nor trashed/spam."""
    return bool(labels & set(SYNCED_LABELS)) and not labels & {DRAFT, TRASH, SPAM}


def b64url_decode(data: str) -> bytes:
    """Gmail's base64url, padded or not (standard-alphabet input is tolerated too)."""
    cleaned = re.sub(r"\s+", "", data).replace("+", "-").replace("/", "_")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.urlsafe_b64decode(cleaned)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64url data") from exc


def decode_words(value: str) -> str:
    """RFC 2047 encoded words (``=?utf-8?q?...?=``) decoded; anything else unchanged."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def one_line(value: str) -> str:
    """A header value (subject) on one line: line breaks become spaces, ends trimmed."""
    if not LINE_BREAKING.isdisjoint(value):
        value = "".join(" " if c in LINE_BREAKING else c for c in value)
    return value.strip()


def millis_to_datetime(value: Any) -> datetime | None:
    try:
        millis = int(value)
    except (TypeError, ValueError):
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def date_header(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# ---- headers and addresses


def header_map(part: Mapping[str, Any]) -> dict[str, str]:
    """A part's headers as a lower-cased name -> value map (first occurrence wins)."""
    return header_map_of(part.get("headers"))


def addresses_of(*values: str | None) -> list[Address]:
    found: list[Address] = []
    present = [v for v in values if v]
    if not present:
        return found
    for name, email in getaddresses(present):
        email = email.strip()
        if "@" not in email or any(c.isspace() for c in email):
            continue
        name = decode_words(name).strip() if name else ""
        found.append(Address(email=email, name=name or None))
    return found


# ---- parts


def _content_type(part: Mapping[str, Any], headers: Mapping[str, str]) -> Message:
    holder = Message()
    holder["Content-Type"] = headers.get("content-type") or as_str(part.get("mimeType")) or "text/plain"
    if "content-disposition" in headers:
        holder["Content-Disposition"] = headers["content-disposition"]
    return holder


def iter_leaves(part: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], bool]]:
    """Leaf parts, depth first, each with whether it sits inside an attached message."""
    yield from _walk(part, 0, inside_attached=False)


def _walk(part: Mapping[str, Any], depth: int, inside_attached: bool) -> Iterator[tuple[Mapping[str, Any], bool]]:
    if depth > _MAX_DEPTH:
        return
    children = part.get("parts")
    mime = (as_str(part.get("mimeType")) or "").lower()
    if isinstance(children, list) and children and not _is_attachment_part(part):
        nested = inside_attached or mime == "message/rfc822"
        for child in children:
            if isinstance(child, Mapping):
                yield from _walk(child, depth + 1, nested)
        return
    yield part, inside_attached


def _body(part: Mapping[str, Any]) -> Mapping[str, Any]:
    body = part.get("body")
    return body if isinstance(body, Mapping) else {}


def _is_attachment_part(part: Mapping[str, Any]) -> bool:
    """A part that is a file: it has a filename or an attachmentId (forwarded messages
    with an attachmentId included), rather than being the message's own text."""
    if as_str(part.get("filename")):
        return True
    return bool(as_str(_body(part).get("attachmentId")))


def _filename(part: Mapping[str, Any], holder: Message) -> str | None:
    name = as_str(part.get("filename"))
    if name:
        return decode_words(name)
    for getter in (holder.get_filename, lambda: holder.get_param("name")):
        try:
            value = getter()
        except (ValueError, LookupError, UnicodeError):
            value = None
        if isinstance(value, tuple):  # RFC 2231 triple
            value = value[2]
        if isinstance(value, str) and value.strip():
            return decode_words(value.strip())
    return None


def attachment_of(part: Mapping[str, Any]) -> AttachmentData:
    headers = header_map(part)
    holder = _content_type(part, headers)
    body = _body(part)
    size = body.get("size")
    content: bytes | None = None
    data = as_str(body.get("data"))
    attachment_id = as_str(body.get("attachmentId"))
    if data and not attachment_id:
        content = b64url_decode(data)
    disposition = (headers.get("content-disposition") or "").split(";", 1)[0].strip().lower()
    content_id = headers.get("content-id")
    content_id = content_id.strip().strip("<>").strip() if content_id else None
    mime = as_str(part.get("mimeType")) or holder.get_content_type()
    return AttachmentData(
        filename=_filename(part, holder) or _default_name(mime),
        content_type=mime.lower() if mime else "application/octet-stream",
        size=int(size) if isinstance(size, int | float) and not isinstance(size, bool) else len(content or b""),
        provider_attachment_id=attachment_id,
        content=content,
        is_inline=disposition == "inline" or (not disposition and bool(content_id)),
        content_id=content_id or None,
    )


def _default_name(mime: str | None) -> str:
    return "message.eml" if (mime or "").lower() == "message/rfc822" else "attachment"


def part_text(part: Mapping[str, Any]) -> str | None:
    """The decoded text of a text part (``None`` when it has no inline data)."""
    data = as_str(_body(part).get("data"))
    if data is None:
        return None
    raw = b64url_decode(data)
    holder = _content_type(part, header_map(part))
    charset = holder.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return raw.decode("utf-8", errors="replace")


# ---- messages


def message_of(item: Mapping[str, Any]) -> MailMessage:
    """A ``format=full`` message -> MailMessage. Only ``id`` is required."""
    provider_id = as_str(item.get("id"))
    if not provider_id:
        raise ValueError("Gmail message without an id")
    labels = labels_of(item)
    payload = item.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    headers = header_map(payload)

    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[AttachmentData] = []
    for leaf, inside_attached in iter_leaves(payload):
        if _is_attachment_part(leaf):
            if not inside_attached:
                attachments.append(attachment_of(leaf))
            continue
        if inside_attached:
            continue
        mime = (as_str(leaf.get("mimeType")) or "").lower()
        if mime not in ("text/plain", "text/html"):
            continue
        disposition = (header_map(leaf).get("content-disposition") or "").split(";", 1)[0].strip().lower()
        if disposition == "attachment":
            attachments.append(attachment_of(leaf))
            continue
        try:
            text = part_text(leaf)
        except ValueError:
            text = None  # undecodable body: the rest of the message still counts
        if text is not None:
            (htmls if mime == "text/html" else texts).append(text)

    references = message_ids_in(headers.get("references"))
    in_reply_to_ids = message_ids_in(headers.get("in-reply-to"))
    in_reply_to = in_reply_to_ids[0] if in_reply_to_ids else (references[-1] if references else None)
    senders = addresses_of(headers.get("from")) or addresses_of(headers.get("sender"))
    return MailMessage(
        provider_id=provider_id,
        thread_key=as_str(item.get("threadId")) or None,
        folder=folder_of(labels),
        message_id=normalize_message_id(headers.get("message-id")),
        in_reply_to=in_reply_to,
        references=references,
        subject=one_line(decode_words(headers.get("subject") or "")),
        sender=senders[0] if senders else None,
        to=addresses_of(headers.get("to")),
        cc=addresses_of(headers.get("cc")),
        bcc=addresses_of(headers.get("bcc")),
        sent_at=millis_to_datetime(item.get("internalDate")) or date_header(headers.get("date")),
        is_read=UNREAD not in labels,
        is_draft=DRAFT in labels,
        html="\n".join(htmls) if htmls else None,
        text="\n".join(texts) if texts else None,
        attachments=attachments,
    )


def history_id_of(value: Any) -> str | None:
    """A historyId (uint64 as a string; tolerated as a JSON number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None


def later_history_id(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if int(a) >= int(b) else b
