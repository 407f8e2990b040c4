"""Email address normalisation and validation."""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import parseaddr

from sync_engine.domain import Address, MailMessage

# Deliberately permissive local part, strict about the overall shape and header safety.
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


# Characters that end or fold a header line somewhere (RFC 5322 CR/LF, NUL, and the
# breaks Python's str.splitlines and some mailers honour): never in a header value.
LINE_BREAKING = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def normalize_email(value: str) -> str:
    return value.strip().lower()


def is_valid_email(value: str) -> bool:
    if len(value) > 320 or has_header_injection(value) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return False
    return bool(_EMAIL.match(value.strip()))


def parse_address(value: str) -> Address:
    name, email = parseaddr(value)
    return Address(email=email, name=name or None)


def participants(message: MailMessage) -> list[Address]:
    """Everyone on the message: sender, To, Cc, Bcc (in that order, de-duplicated)."""
    seen: set[str] = set()
    out: list[Address] = []
    for addr in _all(message):
        key = addr.normalized
        if key and key not in seen:
            seen.add(key)
            out.append(addr)
    return out


def _all(message: MailMessage) -> Iterable[Address]:
    if message.sender:
        yield message.sender
    yield from message.to
    yield from message.cc
    yield from message.bcc


def has_header_injection(*values: str | None) -> bool:
    """True when a value would break out of its header line (see ``LINE_BREAKING``)."""
    return any(v is not None and not LINE_BREAKING.isdisjoint(v) for v in values)
