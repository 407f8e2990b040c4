"""What a CRM send must satisfy before it is queued. Pure.

Everything a provider would refuse is refused here, so nothing is accepted as QUEUED
that cannot go out: addresses, recipient counts, sizes, header safety, attachments.
Limits (documented in README, "Sending email"):
- To + Cc + Bcc together: at most ``MAX_RECIPIENTS`` (Gmail's per-message limit;
  Exchange Online allows more);
- a bulk send: at most ``MAX_BULK_RECIPIENTS`` recipients, one delivery each;
- subject: at most ``MAX_SUBJECT_CHARS`` characters, on one line;
- bodies: text and HTML together at most ``MAX_BODY_BYTES`` bytes of UTF-8;
- attachments: the rules of DESIGN.md rule 6 (3 MB each, types by content), at most
  ``MAX_ATTACHMENTS_BYTES`` together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr

from sync_engine.domain import OutgoingAttachment
from sync_engine.rules.addresses import has_header_injection, is_valid_email, normalize_email
from sync_engine.rules.attachments import check_content

MAX_RECIPIENTS = 100
MAX_BULK_RECIPIENTS = 1000
MAX_SUBJECT_CHARS = 998
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_ATTACHMENTS_BYTES = 20 * 1024 * 1024
MAX_NAME_CHARS = 200
# type/subtype, RFC 2045 tokens, no parameters: what the MIME builders take.
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a draft cannot be queued: ``code`` is a send error code, ``field`` the input."""

    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    subject: str
    html: str | None
    text: str | None
    to: Sequence[str]
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    attachments: Sequence[OutgoingAttachment] = ()


def check_subject(subject: str, field: str = "subject") -> Problem | None:
    if has_header_injection(subject):
        return Problem("INVALID_HEADER", "the subject must be one line (no line breaks or NUL)", field)
    if len(subject) > MAX_SUBJECT_CHARS:
        return Problem("SUBJECT_TOO_LONG", f"the subject is longer than {MAX_SUBJECT_CHARS} characters", field)
    return None


def check_body(html: str | None, text: str | None, field: str = "text") -> Problem | None:
    if not (html or text):
        return Problem("EMPTY_BODY", "a text or HTML body is required", field)
    size = len((html or "").encode("utf-8", "surrogatepass")) + len((text or "").encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        return Problem("BODY_TOO_LARGE", f"the body is larger than {MAX_BODY_BYTES} bytes", field)
    return None


def check_display_name(name: str | None, field: str) -> Problem | None:
    if name is None:
        return None
    if has_header_injection(name):
        return Problem("INVALID_HEADER", "a display name must be one line (no line breaks or NUL)", field)
    if len(name) > MAX_NAME_CHARS:
        return Problem("INVALID", f"a display name is longer than {MAX_NAME_CHARS} characters", field)
    return None


def check_addresses(addresses: Sequence[str], field: str) -> Problem | None:
    for address in addresses:
        if not is_valid_email(address):
            return Problem("INVALID_EMAIL", f"not a valid email address: {address!r}", field)
    return None


def check_attachments(attachments: Sequence[OutgoingAttachment], field: str = "attachments") -> Problem | None:
    total = 0
    for index, att in enumerate(attachments):
        if has_header_injection(att.filename, att.content_type):
            return Problem("INVALID_ATTACHMENT", "attachment names must be one line", f"{field}.{index}")
        if not _CONTENT_TYPE.match(att.content_type):
            return Problem("INVALID_ATTACHMENT", f"{att.content_type!r} is not a MIME type (type/subtype)",
                           f"{field}.{index}")
        verdict = check_content(att.filename, att.content)
        if not verdict.ok:
            assert verdict.problem is not None
            return Problem(verdict.problem.value.upper(), verdict.detail, f"{field}.{index}")
        total += len(att.content)
    if total > MAX_ATTACHMENTS_BYTES:
        return Problem("ATTACHMENT_TOO_LARGE", f"attachments add up to more than {MAX_ATTACHMENTS_BYTES} bytes", field)
    return None


def all_recipients(draft: Draft) -> list[str]:
    """To, Cc and Bcc in order, each address once (case-insensitively)."""
    seen: set[str] = set()
    out: list[str] = []
    for address in (*draft.to, *draft.cc, *draft.bcc):
        key = normalize_email(address)
        if key not in seen:
            seen.add(key)
            out.append(address)
    return out


def check_draft(draft: Draft) -> Problem | None:
    """The first problem of a single email (individual or workflow), or None."""
    if not draft.to:
        return Problem("NO_RECIPIENT", "at least one recipient is required", "to")
    for name in ("to", "cc", "bcc"):
        problem = check_addresses(getattr(draft, name), name)
        if problem:
            return problem
    if len(all_recipients(draft)) > MAX_RECIPIENTS:
        return Problem("TOO_MANY_RECIPIENTS", f"at most {MAX_RECIPIENTS} recipients (To, Cc and Bcc together)", "to")
    return (check_subject(draft.subject) or check_body(draft.html, draft.text)
            or check_attachments(draft.attachments))


def check_from(from_address: str | None, field: str = "from") -> Problem | None:
    """A typed From (``Name <address>`` or a bare address; blank is allowed)."""
    if from_address is None or not from_address.strip():
        return None
    if has_header_injection(from_address):
        return Problem("INVALID_HEADER", "the From must be one line (no line breaks or NUL)", field)
    name, address = parseaddr(from_address.strip())
    if not address or not is_valid_email(address):
        return Problem("INVALID_EMAIL", f"the From is not a valid email address: {from_address!r}", field)
    return check_display_name(name or None, field)


def check_bulk(recipients: Sequence[str], subject: str, html: str | None, text: str | None,
               from_address: str | None = None) -> Problem | None:
    """The first problem of a bulk email (one delivery per recipient), or None."""
    if not recipients:
        return Problem("NO_RECIPIENT", "at least one recipient is required", "recipients")
    if len(recipients) > MAX_BULK_RECIPIENTS:
        return Problem("TOO_MANY_RECIPIENTS", f"at most {MAX_BULK_RECIPIENTS} recipients per bulk email",
                       "recipients")
    return (check_addresses(recipients, "recipients") or check_from(from_address) or check_subject(subject)
            or check_body(html, text))


def missing_contacts(addresses: Sequence[str], contact_emails: set[str]) -> list[str]:
    """The addresses that are not contacts (``contact_emails`` normalized)."""
    return [a for a in addresses if normalize_email(a) not in contact_emails]
