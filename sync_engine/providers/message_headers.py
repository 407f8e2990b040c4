"""Message headers as both adapters read and write them. Pure: no I/O.

- Reading: the provider hands headers over as a list of ``{"name", "value"}``
  objects (Graph ``internetMessageHeaders``, Gmail ``payload.headers``);
  Message-IDs are kept with their angle brackets.
- Writing: every value that becomes a header of an outgoing message is checked for
  CR, LF and NUL (header injection) before any provider call. What makes an
  address acceptable, and which extra fields a provider puts in headers, stays
  with the adapter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sync_engine.domain import OutgoingAttachment, OutgoingMessage
from sync_engine.rules.addresses import has_header_injection

_MSG_ID_RE = re.compile(r"<[^<>\s]+>")


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# ---- reading


def header_map_of(raw: Any) -> dict[str, str]:
    """A ``[{"name", "value"}, ...]`` list as a lower-cased name -> value map (the
    first occurrence of a header wins); anything else is no headers."""
    headers: dict[str, str] = {}
    if not isinstance(raw, list):
        return headers
    for entry in raw:
        if isinstance(entry, Mapping):
            name, value = as_str(entry.get("name")), as_str(entry.get("value"))
            if name and value is not None:
                headers.setdefault(name.strip().lower(), value)
    return headers


def message_ids_in(value: str | None) -> list[str]:
    return _MSG_ID_RE.findall(value) if value else []


def normalize_message_id(value: str | None) -> str | None:
    """Message-IDs with angle brackets, as the domain stores them."""
    if not value or not value.strip():
        return None
    value = value.strip()
    found = message_ids_in(value)
    if found:
        return found[0]
    if any(c.isspace() for c in value) or "<" in value or ">" in value:
        return None
    return f"<{value}>"


# ---- writing


def check_header_safe(field: str, value: str | None) -> None:
    if has_header_injection(value) or (value is not None and "\x00" in value):
        raise ValueError(f"{field} must not contain CR, LF or NUL")


def validate_outgoing(
    message: OutgoingMessage,
    *,
    is_address: Callable[[str], bool],
    also_check: Iterable[str] = (),
    check_attachment: Callable[[OutgoingAttachment], None] | None = None,
) -> None:
    """Reject header injection and unusable messages before any provider call.

    ``is_address`` says whether an (unstripped) address is one the provider takes;
    ``also_check`` names further ``OutgoingMessage`` fields that end up in headers;
    ``check_attachment`` adds the provider's own checks of each attachment."""
    check_header_safe("subject", message.subject)
    check_header_safe("message_id", message.message_id)
    check_header_safe("in_reply_to", message.in_reply_to)
    for name in also_check:
        check_header_safe(name, getattr(message, name))
    for ref in message.references:
        check_header_safe("references", ref)
    for field, addrs in (("sender", (message.sender,)), ("to", message.to), ("cc", message.cc), ("bcc", message.bcc)):
        for addr in addrs:
            check_header_safe(f"{field}.email", addr.email)
            check_header_safe(f"{field}.name", addr.name)
            if not is_address(addr.email):
                raise ValueError(f"{field}: not an email address")
    for att in message.attachments:
        check_header_safe("attachment filename", att.filename)
        check_header_safe("attachment content type", att.content_type)
        if check_attachment is not None:
            check_attachment(att)
    if not (message.to or message.cc or message.bcc):
        raise ValueError("a message needs at least one recipient")
    if normalize_message_id(message.message_id) is None:
        raise ValueError("message_id must be an RFC 5322 Message-ID")
