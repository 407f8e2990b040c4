"""Attachment downloads through short-lived signed URLs.

A download URL is a bearer capability: whoever holds it may fetch that one attachment
until it expires, with no Authorization header (a browser simply navigates to it). It
names the sub-account it was issued for, and an HMAC-SHA256 binds attachment,
sub-account and expiry together. The HMAC key is derived (HKDF, with a label of its
own) from the first encryption key, never that key itself: putting a new key first
(rotation) invalidates every URL issued before.

The bytes are served from the database: the importer stores the content of every
attachment it syncs (phase 1 of ``import_changes`` downloads what the provider did not
inline, and a page never commits a message without it), and CRM sends store what they
send. No provider is called for a download.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from db.repositories.attachments import attachment_file
from sync_engine.services.collaborators import SessionFactory
from sync_engine.settings import Settings

# Versioned, so a future change of what is signed cannot accept today's URLs.
_KEY_LABEL = b"emailsync attachment download url v1"
# Bounds on what a verifier parses, whatever a client puts in the query string.
_MAX_EXPIRES_DIGITS = 12
_MAX_SIGNATURE_CHARS = 64


@dataclass(frozen=True, slots=True)
class AttachmentFile:
    filename: str
    content_type: str
    content: bytes


def signed_download_url(settings: Settings, attachment_id: uuid.UUID, sub_account_id: uuid.UUID,
                 *, now: float | None = None) -> str:
    """``{PUBLIC_BASE_URL}/attachments/{id}?sub_account=...&expires=...&signature=...``,
    valid for ``settings.attachment_url_ttl`` seconds from ``now``."""
    expires = int(time.time() if now is None else now) + settings.attachment_url_ttl
    query = urlencode({
        "sub_account": str(sub_account_id),
        "expires": str(expires),
        "signature": _signature(settings, attachment_id, sub_account_id, expires),
    })
    return f"{settings.public_base_url.rstrip('/')}/attachments/{attachment_id}?{query}"


def verified_sub_account(settings: Settings, attachment_id: uuid.UUID, sub_account: str | None,
                         expires: str | None, signature: str | None, *, now: float | None = None) -> uuid.UUID | None:
    """The sub-account a download URL was issued for, or None when the URL is not one we
    signed or has expired (the caller cannot tell which: both are refused alike)."""
    if not (sub_account and expires and signature) or len(signature) > _MAX_SIGNATURE_CHARS:
        return None
    if not (expires.isascii() and expires.isdigit()) or len(expires) > _MAX_EXPIRES_DIGITS:
        return None
    try:
        sub_account_id = uuid.UUID(sub_account)
    except ValueError:
        return None
    expected = _signature(settings, attachment_id, sub_account_id, int(expires))
    authentic = hmac.compare_digest(expected.encode(), signature.encode())
    fresh = int(expires) > (time.time() if now is None else now)
    return sub_account_id if authentic and fresh else None


@dataclass(frozen=True)
class AttachmentService:
    sessions: SessionFactory

    async def attachment_for_download(self, sub_account_id: uuid.UUID, attachment_id: uuid.UUID) -> AttachmentFile | None:
        """The stored file, if this sub-account has that attachment."""
        async with self.sessions() as session:
            row = await attachment_file(session, sub_account_id, attachment_id)
        if row is None or row.content is None:
            # No content cannot happen for rows written by this code (see the module
            # docstring); such a row has nothing to serve.
            return None
        return AttachmentFile(filename=row.filename, content_type=row.content_type, content=bytes(row.content))


def _signature(settings: Settings, attachment_id: uuid.UUID, sub_account_id: uuid.UUID, expires: int) -> str:
    signed = f"{attachment_id}\n{sub_account_id}\n{expires}".encode()
    mac = hmac.new(_signing_key(_first_encryption_key(settings)), signed, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _first_encryption_key(settings: Settings) -> str:
    # The key that encrypts (sync_engine.crypto.SecretBox): the newest one.
    keys = [k.strip() for k in settings.encryption_keys.get_secret_value().split(",") if k.strip()]
    if not keys:
        raise ValueError("attachment URLs need an encryption key (EMAILSYNC_ENCRYPTION_KEYS)")
    return keys[0]


@lru_cache(maxsize=4)
def _signing_key(encryption_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_LABEL).derive(encryption_key.encode())
