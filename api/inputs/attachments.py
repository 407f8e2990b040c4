"""Outbound attachments as GraphQL input, read and size-checked before any work.

The content comes either base64-encoded in the JSON (``contentBase64``) or as a file
part of a multipart request (``file``, GraphQL multipart request spec; the view parses
the parts, see ``api/graphql_http.py``). The send services check again, together with
the type by content (DESIGN.md rule 6).
"""

from __future__ import annotations

import base64
import binascii

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload

from sync_engine.domain import OutgoingAttachment
from sync_engine.services.errors import ServiceError

MAX_ATTACHMENT_BYTES = 3 * 1024 * 1024
MAX_ATTACHMENTS = 20
_MAX_BASE64_CHARS = (MAX_ATTACHMENT_BYTES + 2) // 3 * 4 + 4
_DEFAULT_CONTENT_TYPE = "application/octet-stream"


@strawberry.input(description="A file to attach: its content in exactly one of `contentBase64` and `file`.")
class AttachmentInput:
    filename: str | None = strawberry.field(
        default=None, description="File name; required with `contentBase64`, defaults to the file part's name."
    )
    content_type: str | None = strawberry.field(
        default=None,
        description="MIME type (the content decides what is accepted); required with `contentBase64`, "
        "defaults to the file part's Content-Type.",
    )
    content_base64: str | None = strawberry.field(
        default=None, description="The content, base64-encoded; at most 3 MB decoded."
    )
    file: Upload | None = strawberry.field(
        default=None,
        description="The content as a file part of a multipart request (GraphQL multipart request spec); at most 3 MB.",
    )


def decode_attachments(items: list[AttachmentInput]) -> list[OutgoingAttachment]:
    if len(items) > MAX_ATTACHMENTS:
        raise ServiceError("INVALID", f"at most {MAX_ATTACHMENTS} attachments", "attachments")
    decoded = []
    for index, item in enumerate(items):
        field = f"attachments.{index}"
        if (item.content_base64 is None) == (item.file is None):
            raise ServiceError("INVALID_ATTACHMENT", "give exactly one of contentBase64 and file", field)
        if item.file is not None:
            decoded.append(_read_upload(item, item.file, f"{field}.file"))
        else:
            decoded.append(_decode_base64(item, item.content_base64 or "", field))
    return decoded


def _decode_base64(item: AttachmentInput, content_base64: str, field: str) -> OutgoingAttachment:
    if item.filename is None or item.content_type is None:
        raise ServiceError("INVALID_ATTACHMENT", "contentBase64 needs a filename and a contentType", field)
    field = f"{field}.contentBase64"
    if len(content_base64) > _MAX_BASE64_CHARS:
        raise ServiceError("ATTACHMENT_TOO_LARGE", f"{item.filename} is larger than 3 MB", field)
    try:
        content = base64.b64decode(content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError("INVALID_ATTACHMENT", f"{item.filename} is not valid base64", field) from None
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise ServiceError("ATTACHMENT_TOO_LARGE", f"{item.filename} is larger than 3 MB", field)
    return OutgoingAttachment(filename=item.filename, content_type=item.content_type, content=content)


def _read_upload(item: AttachmentInput, upload: object, field: str) -> OutgoingAttachment:
    # The Upload scalar takes any value: over JSON a client can put a string there.
    if not isinstance(upload, UploadFile):
        raise ServiceError("INVALID_ATTACHMENT", "file must be a file part of a multipart request", field)
    filename = item.filename or _base_name(upload.filename or "")
    if not filename:
        raise ServiceError("INVALID_ATTACHMENT", "the file part has no name: give a filename", field)
    if upload.size is not None and upload.size > MAX_ATTACHMENT_BYTES:
        raise ServiceError("ATTACHMENT_TOO_LARGE", f"{filename} is larger than 3 MB", field)
    # Read synchronously: the view has just spooled the part to a temporary file (memory
    # up to 1 MB, then a local file still in the page cache), at most 3 MB are read, and
    # this keeps decoding usable from the synchronous request builders of the send mutations.
    upload.file.seek(0)  # one part may be mapped to several attachments
    content = upload.file.read(MAX_ATTACHMENT_BYTES + 1)
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise ServiceError("ATTACHMENT_TOO_LARGE", f"{filename} is larger than 3 MB", field)
    content_type = item.content_type or _media_type(upload.content_type) or _DEFAULT_CONTENT_TYPE
    return OutgoingAttachment(filename=filename, content_type=content_type, content=content)


def _base_name(part_filename: str) -> str:
    # Some browsers send the client's full path; only the last segment is the name.
    return part_filename.replace("\\", "/").rsplit("/", 1)[-1].strip()


def _media_type(part_content_type: str | None) -> str:
    # Parameters (e.g. charset) are dropped: the providers take a bare type/subtype.
    return (part_content_type or "").split(";", 1)[0].strip()
