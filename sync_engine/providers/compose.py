"""RFC 5322 messages for outgoing CRM mail, built with the stdlib ``email`` package. Pure.

Every adapter that hands a provider a complete message uses this builder: Gmail's
``messages.send`` and the sub-account's SMTP relay. Our ``Message-ID`` is written
as given, so the copy that comes back from a Sent folder is recognised. A reply
carries ``In-Reply-To``/``References`` (the chain, ending with the parent) and the
subject as given (the CRM already wrote ``Re: ...``). ``Bcc`` is written too: Gmail
reads it for delivery and strips it; an SMTP client removes it before DATA.

Header injection: every value that becomes a header (subject, ids, addresses, names,
attachment names and types) is checked for CR, LF and NUL before anything is built,
and ``ValueError`` is raised before any provider call.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from sync_engine.domain import Address, OutgoingAttachment, OutgoingMessage
from sync_engine.providers import message_headers
from sync_engine.providers.message_headers import message_ids_in, normalize_message_id

_TOKEN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+$")


def _is_address(email: str) -> bool:
    email = email.strip()
    return not (email.count("@") != 1 or any(c.isspace() for c in email) or any(c in email for c in "<>,;\"()"))


def _check_content_type(att: OutgoingAttachment) -> None:
    maintype, _, subtype = att.content_type.partition("/")
    if not (_TOKEN.match(maintype or "") and _TOKEN.match(subtype or "")):
        raise ValueError("attachment content type must be type/subtype")


def validate_outgoing(message: OutgoingMessage) -> None:
    """Reject header injection and unusable messages before any provider call."""
    message_headers.validate_outgoing(
        message,
        is_address=_is_address,
        # Provider ids that adapters put on the wire beside the MIME (Gmail's threadId).
        also_check=("thread_key", "reply_to_provider_id"),
        check_attachment=_check_content_type,
    )


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
