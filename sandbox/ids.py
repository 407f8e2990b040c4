"""Identifier and timestamp helpers shared by every simulated provider.

Ids are random but *shaped* like the real ones, so adapters that make
assumptions about length or alphabet (URL-safe base64 with padding for
Microsoft, 16 hex digits for Gmail) meet realistic values in tests.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime


def _b64url(nbytes: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def new_guid() -> str:
    return str(uuid.uuid4())


def graph_rest_id() -> str:
    """An Outlook REST item id (the default id type; it changes when an item moves)."""
    return "AAMkAD" + _b64url(70)


def graph_immutable_id() -> str:
    """An Outlook immutable id (stable for the life of the item)."""
    return "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A" + _b64url(52)


def graph_conversation_id() -> str:
    return "AAQkAD" + _b64url(40)


def graph_folder_id() -> str:
    return "AQMkAD" + _b64url(33)


def change_key() -> str:
    return "CQAAABYAAAC" + base64.b64encode(secrets.token_bytes(21)).decode("ascii")


_last_gmail_id = 0
_gmail_id_lock = threading.Lock()


def gmail_id() -> str:
    """16 hex digits that grow with time, as Gmail's do (the millisecond clock in the
    high bits, 20 low bits of noise), strictly increasing within this process so that
    ties on ``internalDate`` still order newest-first by id."""
    global _last_gmail_id
    candidate = (int(time.time() * 1000) << 20) | secrets.randbits(20)
    with _gmail_id_lock:
        _last_gmail_id = max(candidate, _last_gmail_id + 1)
        return f"{_last_gmail_id & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def new_message_id(provider: str) -> str:
    return gmail_id() if provider == "gmail" else graph_immutable_id()


def new_conversation_id(provider: str) -> str:
    return gmail_id() if provider == "gmail" else graph_conversation_id()


def internet_message_id() -> str:
    return f"<{secrets.token_hex(12)}@sandbox.local>"


def opaque_token(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_z(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a trailing Z and whole seconds, as Graph writes message times."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_z_precise(moment: datetime) -> str:
    """Seven fractional digits, as Graph writes subscription expirations."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def parse_iso(value: str) -> datetime:
    """Parse the ISO forms clients send (Z or offset, 0-7 fractional digits)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; Graph samples carry 7.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
