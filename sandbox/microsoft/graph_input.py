"""Graph request bodies turned into store values, with Graph's validation rules.

Graph is lenient where the published samples are (``"saveToSentItems": "false"``
as a string, ``"contentType": "Text"`` in any case) and strict where the
service is (custom headers must start with ``x-``; recipients need an address).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from sandbox import mailflow
from sandbox.mailflow import Outgoing
from sandbox.microsoft.graph_common import GraphError
from sandbox.store import Address, Attachment, Mailbox

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # larger attachments need an upload session


def as_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise GraphError(400, "BadRequest", f"Invalid value for property '{field}': expected a Boolean.")


def single_line(value: str) -> str:
    """Header-bound text loses CR/LF (Exchange unfolds them; never a header injection)."""
    return " ".join(value.replace("\r", "\n").split("\n"))


def addresses(value: Any, field: str) -> list[Address]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise GraphError(400, "BadRequest", f"Property '{field}' must be a collection of recipients.")
    people = []
    for entry in value:
        email_address = entry.get("emailAddress") if isinstance(entry, dict) else None
        address = (email_address or {}).get("address")
        if not isinstance(address, str) or "@" not in address or any(c in address for c in "\r\n <>"):
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        people.append(Address(address=address, name=single_line(str((email_address or {}).get("name") or ""))))
    return people


def body(value: Any) -> tuple[str | None, str | None]:
    """(html, text) from a Graph itemBody."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise GraphError(400, "BadRequest", "Property 'body' must be an itemBody object.")
    content = str(value.get("content") or "")
    if str(value.get("contentType", "text")).lower() == "html":
        return content, None
    return None, content


def attachments(mailbox: Mailbox, value: Any) -> list[Attachment]:
    result = []
    for entry in value or []:
        if not isinstance(entry, dict):
            raise GraphError(400, "BadRequest", "Invalid attachment.")
        odata_type = str(entry.get("@odata.type", "#microsoft.graph.fileAttachment")).lower()
        if odata_type != "#microsoft.graph.fileattachment":
            raise GraphError(400, "ErrorInvalidAttachmentType", f"Attachments of type {odata_type} are not supported by the sandbox.")
        try:
            data = base64.b64decode(str(entry.get("contentBytes") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise GraphError(400, "ErrorInvalidAttachment", "Invalid base64 string for attachment contentBytes.") from None
        result.append(
            mailflow.new_attachment(
                mailbox,
                str(entry.get("name") or "attachment"),
                str(entry.get("contentType") or "application/octet-stream"),
                data,
                content_id=entry.get("contentId"),
                is_inline=bool(entry.get("isInline", False)),
            )
        )
    return result


def custom_headers(value: Any) -> list[tuple[str, str]]:
    headers = []
    for entry in value or []:
        name = str((entry or {}).get("name", ""))
        header_value = str((entry or {}).get("value", ""))
        if not name.lower().startswith("x-"):
            raise GraphError(400, "InvalidInternetMessageHeader",
                             f"The internet message header name '{name}' should start with 'x-' or 'X-'.")
        if any(c in name + header_value for c in "\r\n") or ":" in name:
            raise GraphError(400, "InvalidInternetMessageHeader", f"The internet message header '{name}' is not valid.")
        headers.append((name, header_value))
    return headers


def outgoing(mailbox: Mailbox, data: dict[str, Any]) -> Outgoing:
    """A Graph message resource (as sent by clients) as an outgoing mail."""
    html, text = body(data.get("body"))
    imid = data.get("internetMessageId")
    if imid is not None:
        imid = internet_message_id(imid)
    return Outgoing(
        to=addresses(data.get("toRecipients"), "toRecipients"),
        cc=addresses(data.get("ccRecipients"), "ccRecipients"),
        bcc=addresses(data.get("bccRecipients"), "bccRecipients"),
        reply_to=addresses(data.get("replyTo"), "replyTo"),
        subject=single_line(str(data.get("subject") or "")),
        html=html,
        text=text,
        attachments=attachments(mailbox, data.get("attachments")),
        custom_headers=custom_headers(data.get("internetMessageHeaders")),
        internet_message_id=imid,
        importance=str(data.get("importance") or "normal").lower(),
    )


# Fields of a draft a PATCH may change, mapped to store attribute names.
DRAFT_FIELDS = {
    "subject": "subject",
    "body": "body",
    "toRecipients": "to",
    "ccRecipients": "cc",
    "bccRecipients": "bcc",
    "replyTo": "reply_to",
    "internetMessageHeaders": "custom_headers",
    "internetMessageId": "internet_message_id",  # writable while isDraft (message-update.md)
    "from": "from_",
    "sender": "sender",
}
ACCEPTED_AND_IGNORED = {"inferenceClassification", "isDeliveryReceiptRequested", "isReadReceiptRequested"}


def internet_message_id(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("<") or not value.endswith(">") or "@" not in value \
            or any(c in value for c in " \r\n"):
        raise GraphError(400, "ErrorInvalidInternetMessageId", "internetMessageId must look like <id@domain>.")
    return value


def patch_values(data: dict[str, Any], is_draft: bool, owner: str = "") -> dict[str, Any]:
    """Store attribute values for a PATCH body (Graph's updatable message properties)."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key.startswith("@odata") or key in ACCEPTED_AND_IGNORED:
            continue
        if key == "isRead":
            values["is_read"] = as_bool(value, key)
        elif key == "categories":
            values["categories"] = [str(c) for c in value or []]
        elif key == "flag":
            values["flag_status"] = str((value or {}).get("flagStatus", "notFlagged"))
        elif key == "importance":
            values["importance"] = str(value).lower()
        elif key in DRAFT_FIELDS:
            if not is_draft:
                raise GraphError(400, "ErrorInvalidPropertyUpdateSentMessage",
                                 f"Update of property '{key}' is not allowed on a sent message.")
            if key == "body":
                values["body_html"], values["body_text"] = body(value)
            elif key == "subject":
                values["subject"] = single_line(str(value or ""))
            elif key == "internetMessageHeaders":
                values["custom_headers"] = custom_headers(value)
            elif key == "internetMessageId":
                values["internet_message_id"] = internet_message_id(value)
            elif key in ("from", "sender"):
                (person,) = addresses([value], key) if value else [None]
                if person is not None and owner and not person.same(owner):
                    raise GraphError(403, "ErrorSendAsDenied",
                                     "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.")
                if person is not None:
                    values[DRAFT_FIELDS[key]] = person
            else:
                values[DRAFT_FIELDS[key]] = addresses(value, key)
        else:
            raise GraphError(400, "ErrorInvalidProperty", f"The property '{key}' is not supported or is read-only.")
    return values
