"""RFC 5322 messages for ``messages.send``, built with the stdlib ``email`` package. Pure.

Gmail sends exactly the MIME it is given (``raw``, base64url): our ``Message-ID``
stays, ``Bcc`` is read for delivery and removed from what recipients see. A reply
joins the Gmail thread when the request carries ``threadId`` *and* the message has
``In-Reply-To``/``References`` and the same subject; the subject is sent as given
(the CRM already wrote ``Re: ...``).

Header injection: every value that becomes a header (subject, ids, addresses, names,
attachment names and types) is checked for CR, LF and NUL before anything is built,
and ``ValueError`` is raised before any provider call.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from sync_engine.domain import Address, OutgoingMessage
from sync_engine.providers.gmail.mapping import message_ids_in, normalize_message_id

_FORBIDDEN = re.compile(r"[\r\n\x00]")
_TOKEN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+$")
# Gmail refuses messages over 35 MB (the upload URI's ceiling).
MAX_RAW_BYTES = 35 * 1024 * 1024


def check_header_safe(field: str, value: str | None) -> None:
    if value is not None and _FORBIDDEN.search(value):
        raise ValueError(f"{field} must not contain CR, LF or NUL")


def validate_outgoing(message: OutgoingMessage) -> None:
    """Reject header injection and unusable messages before any provider call."""
    check_header_safe("subject", message.subject)
    check_header_safe("message_id", message.message_id)
    check_header_safe("in_reply_to", message.in_reply_to)
    check_header_safe("thread_key", message.thread_key)
    check_header_safe("reply_to_provider_id", message.reply_to_provider_id)
    for ref in message.references:
        check_header_safe("references", ref)
    for field, addrs in (("sender", (message.sender,)), ("to", message.to), ("cc", message.cc), ("bcc", message.bcc)):
        for addr in addrs:
            check_header_safe(f"{field}.email", addr.email)
            check_header_safe(f"{field}.name", addr.name)
            email = addr.email.strip()
            if email.count("@") != 1 or any(c.isspace() for c in email) or any(c in email for c in "<>,;\"()"):
                raise ValueError(f"{field}: not an email address")
    for att in message.attachments:
        check_header_safe("attachment filename", att.filename)
        check_header_safe("attachment content type", att.content_type)
        maintype, _, subtype = att.content_type.partition("/")
        if not (_TOKEN.match(maintype or "") and _TOKEN.match(subtype or "")):
            raise ValueError("attachment content type must be type/subtype")
    if not (message.to or message.cc or message.bcc):
        raise ValueError("a message needs at least one recipient")
    if normalize_message_id(message.message_id) is None:
        raise ValueError("message_id must be an RFC 5322 Message-ID")


def _header_address(address: Address) -> HeaderAddress:
    local, _, domain = address.email.strip().rpartition("@")
    try:
        return HeaderAddress(display_name=(address.name or "").strip(), username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"not an email address: {type(exc).__name__}") from exc


def references_of(message: OutgoingMessage) -> list[str]:
    """References for a reply: the given chain, ending with the message replied to."""
    refs: list[str] = []
    for ref in message.references:
        for found in message_ids_in(ref) or ([normalize_message_id(ref)] if normalize_message_id(ref) else []):
            if found not in refs:
                refs.append(found)
    parent = normalize_message_id(message.in_reply_to)
    if parent and (not refs or refs[-1] != parent):
        if parent in refs:
            refs.remove(parent)
        refs.append(parent)
    return refs


def build_mime(message: OutgoingMessage, *, now: datetime | None = None) -> EmailMessage:
    validate_outgoing(message)
    mime = EmailMessage(policy=SMTP)
    mime["From"] = _header_address(message.sender)
    if message.to:
        mime["To"] = [_header_address(a) for a in message.to]
    if message.cc:
        mime["Cc"] = [_header_address(a) for a in message.cc]
    if message.bcc:
        mime["Bcc"] = [_header_address(a) for a in message.bcc]
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(now or datetime.now(UTC))
    mime["Message-ID"] = normalize_message_id(message.message_id)
    parent = normalize_message_id(message.in_reply_to)
    if parent:
        mime["In-Reply-To"] = parent
    refs = references_of(message)
    if refs:
        mime["References"] = " ".join(refs)

    text, html = message.text, message.html
    if html is not None and text is not None:
        mime.set_content(text)
        mime.add_alternative(html, subtype="html")
    elif html is not None:
        mime.set_content(html, subtype="html")
    else:
        mime.set_content(text or "")
    for att in message.attachments:
        maintype, _, subtype = att.content_type.partition("/")
        mime.add_attachment(att.content, maintype=maintype.lower(), subtype=subtype.lower(), filename=att.filename)
    return mime


def raw_of(mime: EmailMessage) -> str:
    """The base64url ``raw`` field of ``messages.send``."""
    return raw_bytes_b64(mime.as_bytes())


def raw_bytes_b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")
