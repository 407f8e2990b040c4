"""Outbound attachments as GraphQL input, decoded and size-checked before any work.

The send services check again, together with the type by content (DESIGN.md rule 6).
"""

from __future__ import annotations

import base64
import binascii

import strawberry

from sync_engine.domain import OutgoingAttachment
from sync_engine.services.errors import ServiceError

MAX_ATTACHMENT_BYTES = 3 * 1024 * 1024
MAX_ATTACHMENTS = 20
_MAX_BASE64_CHARS = (MAX_ATTACHMENT_BYTES + 2) // 3 * 4 + 4


@strawberry.input(description="A file to attach.")
class AttachmentInput:
    filename: str = strawberry.field(description="File name.")
    content_type: str = strawberry.field(description="MIME type (the content decides what is accepted).")
    content_base64: str = strawberry.field(description="The content, base64-encoded; at most 3 MB decoded.")


def decode_attachments(items: list[AttachmentInput]) -> list[OutgoingAttachment]:
    if len(items) > MAX_ATTACHMENTS:
        raise ServiceError("INVALID", f"at most {MAX_ATTACHMENTS} attachments", "attachments")
    decoded = []
    for index, item in enumerate(items):
        field = f"attachments.{index}.contentBase64"
        if len(item.content_base64) > _MAX_BASE64_CHARS:
            raise ServiceError("ATTACHMENT_TOO_LARGE", f"{item.filename} is larger than 3 MB", field)
        try:
            content = base64.b64decode(item.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ServiceError("INVALID_ATTACHMENT", f"{item.filename} is not valid base64", field) from None
        if len(content) > MAX_ATTACHMENT_BYTES:
            raise ServiceError("ATTACHMENT_TOO_LARGE", f"{item.filename} is larger than 3 MB", field)
        decoded.append(OutgoingAttachment(filename=item.filename, content_type=item.content_type, content=content))
    return decoded
