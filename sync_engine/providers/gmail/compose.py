"""Outgoing MIME as Gmail's ``messages.send`` takes it: the ``raw`` field and Gmail's size limit.

The message itself comes from the provider-neutral builder (``providers.compose``,
re-exported here). Gmail sends exactly the MIME it is given: our ``Message-ID``
stays, ``Bcc`` is read for delivery and removed from what recipients see. A reply
joins the Gmail thread when the request carries ``threadId`` *and* the message has
``In-Reply-To``/``References`` and the same subject.
"""

from __future__ import annotations

import base64
from email.message import EmailMessage

from sync_engine.providers.compose import build_mime, references_of, validate_outgoing

__all__ = ["MAX_RAW_BYTES", "build_mime", "raw_bytes_b64", "raw_of", "references_of", "validate_outgoing"]

# Gmail refuses messages over 35 MB (the upload URI's ceiling).
MAX_RAW_BYTES = 35 * 1024 * 1024


def raw_of(mime: EmailMessage) -> str:
    """The base64url ``raw`` field of ``messages.send``."""
    return raw_bytes_b64(mime.as_bytes())


def raw_bytes_b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")
