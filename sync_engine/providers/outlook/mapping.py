"""Graph JSON <-> domain types. Pure functions: no I/O, no clock, no logging of content.

Graph payloads are taken as they really come, published quirks included:
``"isRead": "true"`` as a string (delta-query-messages.md), mixed-case addresses,
``emailAddress`` objects without an address (Sent Items copies), ``null`` or missing
fields, placeholder values (``"datetime-value"``), 7-digit fractional seconds,
surrogate-pair emoji escapes (decoded by the JSON parser), subjects that decode to
several lines (an encoded word holding a newline: kept as one line, since a subject is
a header value and every reply repeats it).

Delta entries come in three shapes:
- ``{"id", "@removed": {...}}``                      -> ``ChangeKind.REMOVED``
- a full message (any content property we select)   -> ``ChangeKind.UPSERT``
- ``id`` + ``isRead`` and at most envelope trivia    -> ``ChangeKind.READ_STATE``
An entry that is neither (no content, no read flag) is reported as ``None`` so the
caller can fetch the message in full.

Threading: ``conversationId`` is the thread key. ``In-Reply-To``/``References`` come
from ``internetMessageHeaders``, which we ``$select`` in delta (the message: delta
API documents ``$select`` "as in any GET request"). Exchange does not return them
for Sent Items copies, hence both keys are optional and the threading rules
fall back on ``conversationId`` and our own Message-ID.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sync_engine.domain import (
    Address,
    AttachmentData,
    ChangeKind,
    Folder,
    MailChange,
    MailMessage,
    OutgoingAttachment,
    OutgoingMessage,
)
from sync_engine.providers import message_headers
from sync_engine.providers.message_headers import (
    as_str,
    header_map_of,
    message_ids_in,
    normalize_message_id,
)
from sync_engine.rules.addresses import LINE_BREAKING

# Everything MailMessage needs, in one delta/GET round trip.
MESSAGE_SELECT = ",".join(
    (
        "id",
        "subject",
        "from",
        "sender",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "receivedDateTime",
        "sentDateTime",
        "isRead",
        "isDraft",
        "conversationId",
        "internetMessageId",
        "internetMessageHeaders",
        "body",
        "hasAttachments",
        "parentFolderId",
    )
)
ATTACHMENT_SELECT = "id,name,contentType,size,isInline"

# Properties whose presence marks a delta entry as a full message copy.
_CONTENT_KEYS = frozenset(
    {
        "body",
        "toRecipients",
        "ccRecipients",
        "from",
        "receivedDateTime",
        "sentDateTime",
        "conversationId",
        "internetMessageId",
        "hasAttachments",
    }
)
_CID_RE = re.compile(r"""["'(\s]cid:""", re.IGNORECASE)


# ---- scalars


def as_bool(value: Any, default: bool = False) -> bool:
    """Graph booleans, including the published ``"true"``/``"false"`` strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no", ""):
            return False
        return default
    if isinstance(value, int | float):
        return bool(value)
    return default


def as_datetime(value: Any) -> datetime | None:
    """An ISO 8601 Graph timestamp (``Z``, offsets, 7-digit fractions) as aware UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    # Python accepts at most 6 fractional digits on some versions: trim the 7th.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Graph times are UTC
    return parsed.astimezone(UTC)


def one_line(value: str | None) -> str:
    """A header value (subject) on one line: line breaks become spaces, ends trimmed."""
    if not value:
        return ""
    if not LINE_BREAKING.isdisjoint(value):
        value = "".join(" " if c in LINE_BREAKING else c for c in value)
    return value.strip()


# ---- addresses


def address_of(recipient: Any) -> Address | None:
    """``{"emailAddress": {"name", "address"}}`` -> Address (None without a usable address).
    The address keeps its case (``Address.normalized`` lowers it for comparisons)."""
    if not isinstance(recipient, Mapping):
        return None
    inner = recipient.get("emailAddress")
    if not isinstance(inner, Mapping):
        return None
    email = as_str(inner.get("address"))
    if not email or "@" not in email:
        return None
    name = as_str(inner.get("name"))
    name = name.strip() if name else None
    return Address(email=email.strip(), name=name or None)


def addresses_of(recipients: Any) -> list[Address]:
    if not isinstance(recipients, list):
        return []
    return [a for a in (address_of(r) for r in recipients) if a is not None]


def recipient(address: Address) -> dict[str, Any]:
    inner: dict[str, str] = {"address": address.email}
    if address.name:
        inner["name"] = address.name
    return {"emailAddress": inner}


# ---- headers


def header_map(item: Mapping[str, Any]) -> dict[str, str]:
    """``internetMessageHeaders`` as a case-insensitive (lower-cased) name -> value map;
    the first occurrence of a header wins."""
    return header_map_of(item.get("internetMessageHeaders"))


# ---- messages


def is_removed(item: Mapping[str, Any]) -> bool:
    return "@removed" in item


def is_full_message(item: Mapping[str, Any]) -> bool:
    return any(key in item for key in _CONTENT_KEYS)


def attachment_of(item: Mapping[str, Any]) -> AttachmentData:
    size = item.get("size")
    name = as_str(item.get("name")) or "attachment"
    return AttachmentData(
        filename=name,
        content_type=as_str(item.get("contentType")) or "application/octet-stream",
        size=int(size) if isinstance(size, int | float) and not isinstance(size, bool) else 0,
        provider_attachment_id=as_str(item.get("id")),
        content=_decode_content(item.get("contentBytes")),
        is_inline=as_bool(item.get("isInline")),
        content_id=as_str(item.get("contentId")),
    )


def _decode_content(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    return base64.b64decode(value)


def may_have_attachments(item: Mapping[str, Any]) -> bool:
    """``hasAttachments`` is false for messages with only inline images (cid:), so
    an HTML body that references ``cid:`` is also worth an attachment listing."""
    if as_bool(item.get("hasAttachments")):
        return True
    body = item.get("body")
    if isinstance(body, Mapping) and str(body.get("contentType", "")).lower() == "html":
        content = as_str(body.get("content")) or ""
        return bool(_CID_RE.search(content))
    return False


def message_of(
    item: Mapping[str, Any], folder: Folder, attachments: Iterable[AttachmentData] = ()
) -> MailMessage:
    """A full Graph message -> MailMessage. Only ``id`` is required."""
    provider_id = as_str(item.get("id"))
    if not provider_id:
        raise ValueError("Graph message without an id")
    headers = header_map(item)
    references = message_ids_in(headers.get("references"))
    in_reply_to_ids = message_ids_in(headers.get("in-reply-to"))
    in_reply_to = in_reply_to_ids[0] if in_reply_to_ids else None
    if in_reply_to is None and references:
        in_reply_to = references[-1]

    html = text = None
    body = item.get("body")
    if isinstance(body, Mapping):
        content = as_str(body.get("content"))
        kind = str(body.get("contentType") or "").strip().lower()
        if content is not None:
            if kind == "html":
                html = content
            else:
                text = content

    sender = address_of(item.get("from")) or address_of(item.get("sender"))
    message_id = normalize_message_id(as_str(item.get("internetMessageId"))) or normalize_message_id(
        headers.get("message-id")
    )
    return MailMessage(
        provider_id=provider_id,
        thread_key=as_str(item.get("conversationId")) or None,
        folder=folder,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        subject=one_line(as_str(item.get("subject"))),
        sender=sender,
        to=addresses_of(item.get("toRecipients")),
        cc=addresses_of(item.get("ccRecipients")),
        bcc=addresses_of(item.get("bccRecipients")),
        sent_at=as_datetime(item.get("sentDateTime")) or as_datetime(item.get("receivedDateTime")),
        is_read=as_bool(item.get("isRead")),
        is_draft=as_bool(item.get("isDraft")),
        html=html,
        text=text,
        attachments=list(attachments),
    )


def change_of(
    item: Mapping[str, Any], folder: Folder, attachments: Iterable[AttachmentData] = ()
) -> MailChange | None:
    """One delta entry -> MailChange; ``None`` when the entry is too partial to tell
    (the caller then fetches the message)."""
    provider_id = as_str(item.get("id"))
    if not provider_id:
        raise ValueError("delta entry without an id")
    if is_removed(item):
        return MailChange(kind=ChangeKind.REMOVED, provider_id=provider_id)
    if is_full_message(item):
        return MailChange(
            kind=ChangeKind.UPSERT,
            provider_id=provider_id,
            message=message_of(item, folder, attachments),
        )
    if "isRead" in item:
        return MailChange(
            kind=ChangeKind.READ_STATE, provider_id=provider_id, is_read=as_bool(item.get("isRead"))
        )
    return None


# ---- outgoing

def _is_address(email: str) -> bool:
    return "@" in email and not any(c.isspace() for c in email.strip())


def validate_outgoing(message: OutgoingMessage) -> None:
    """Reject header injection and unusable messages before any provider call."""
    message_headers.validate_outgoing(message, is_address=_is_address)


def body_of(message: OutgoingMessage) -> dict[str, str]:
    if message.html is not None:
        return {"contentType": "html", "content": message.html}
    return {"contentType": "text", "content": message.text or ""}


def draft_fields(message: OutgoingMessage, *, include_subject: bool = True) -> dict[str, Any]:
    """The writable draft properties of ``message`` (POST /me/messages or PATCH)."""
    fields: dict[str, Any] = {
        "body": body_of(message),
        "toRecipients": [recipient(a) for a in message.to],
        "ccRecipients": [recipient(a) for a in message.cc],
        "bccRecipients": [recipient(a) for a in message.bcc],
        # Writable while isDraft is true (message-update.md): the copy that comes back
        # from Sent Items then carries our Message-ID and dedupes against the outbox row.
        "internetMessageId": normalize_message_id(message.message_id),
    }
    if include_subject:
        fields["subject"] = message.subject
    return fields


def file_attachment(attachment: OutgoingAttachment) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": attachment.filename,
        "contentType": attachment.content_type,
        "contentBytes": base64.b64encode(attachment.content).decode("ascii"),
    }
