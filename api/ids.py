"""Relay global ids and opaque pagination cursors.

A global id is ``base64url("<Type>:<uuid>")``; a cursor is ``base64url("<part>|<part>")``
for the keyset of the list it came from. Both are opaque to clients: malformed or
foreign values decode to ``None`` so callers answer "not found" / "invalid cursor".
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime


def _b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _b64decode(value: str) -> str | None:
    if len(value) > 512:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def to_global_id(type_name: str, id_: uuid.UUID) -> str:
    return _b64encode(f"{type_name}:{id_}")


def from_global_id(global_id: str) -> tuple[str, uuid.UUID] | None:
    decoded = _b64decode(global_id)
    if decoded is None:
        return None
    type_name, sep, raw_id = decoded.partition(":")
    if not sep:
        return None
    try:
        return type_name, uuid.UUID(raw_id)
    except ValueError:
        return None


def parse_global_id(global_id: str, type_name: str) -> uuid.UUID | None:
    """The uuid inside ``global_id`` if it names a ``type_name``, else None."""
    parsed = from_global_id(global_id)
    if parsed is None or parsed[0] != type_name:
        return None
    return parsed[1]


# ---- cursors


def encode_time_cursor(at: datetime, id_: uuid.UUID) -> str:
    return _b64encode(f"{at.isoformat()}|{id_}")


def decode_time_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    decoded = _b64decode(cursor)
    if decoded is None:
        return None
    raw_at, sep, raw_id = decoded.partition("|")
    if not sep:
        return None
    try:
        at = datetime.fromisoformat(raw_at)
        return at, uuid.UUID(raw_id)
    except ValueError:
        return None


def encode_text_cursor(key: str, id_: uuid.UUID) -> str:
    return _b64encode(f"{id_}|{key}")


def decode_text_cursor(cursor: str) -> tuple[str, uuid.UUID] | None:
    decoded = _b64decode(cursor)
    if decoded is None:
        return None
    raw_id, sep, key = decoded.partition("|")
    if not sep:
        return None
    try:
        return key, uuid.UUID(raw_id)
    except ValueError:
        return None
