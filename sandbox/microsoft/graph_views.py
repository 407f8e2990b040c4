"""Store objects rendered as Microsoft Graph JSON.

Key order and shapes follow the published samples (graph_message.json and
friends): ``emailAddress{name,address}`` objects, ``body{contentType,content}``,
times in UTC with ``Z``, ``@odata.etag`` derived from the change key.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
from typing import Any
from urllib.parse import quote

from sandbox import ids
from sandbox.mime import html_to_text, preview
from sandbox.store import Address, Attachment, Mailbox, Message


def email_address(addr: Address | None) -> dict[str, Any] | None:
    if addr is None:
        return None
    return {"emailAddress": {"name": addr.name or addr.address, "address": addr.address}}


def recipients(people: list[Address]) -> list[dict[str, Any]]:
    return [email_address(a) for a in people]  # type: ignore[misc]


def etag(message: Message) -> str:
    return f'W/"{message.change_key}"'


def entity_context(base: str, user_id: str, select: list[str] | None = None) -> str:
    projection = f"({','.join(select)})" if select else ""
    return f"{base}/$metadata#users('{user_id}')/messages{projection}/$entity"


def collection_context(base: str, user_id: str, select: list[str] | None = None) -> str:
    projection = f"({','.join(select)})" if select else ""
    return f"{base}/$metadata#users('{user_id}')/messages{projection}"


def body_preview(message: Message) -> str:
    return preview(message.body_text, message.body_html)


def _conversation_index(message: Message) -> str:
    digest = hashlib.sha256(f"{message.conversation_id}:{message.id}".encode()).digest()
    return base64.b64encode(b"\x01" + digest[:21]).decode()


def _body(message: Message, prefer_text: bool) -> dict[str, str]:
    if message.body_html is not None and not prefer_text:
        return {"contentType": "html", "content": message.body_html}
    if message.body_text is not None:
        return {"contentType": "text", "content": message.body_text}
    return {"contentType": "text", "content": html_to_text(message.body_html or "")}


def internet_message_headers(message: Message) -> list[dict[str, str]]:
    parsed = email.message_from_bytes(message.mime, policy=email.policy.compat32)
    return [{"name": name, "value": str(value)} for name, value in parsed.items()]


def message_json(
    message: Message,
    mailbox: Mailbox,
    message_id: str,
    *,
    select: list[str] | None = None,
    prefer_text: bool = False,
    web_base: str = "https://outlook.office365.com",
) -> dict[str, Any]:
    """A Graph message resource (without @odata.context; callers add it)."""
    received = message.received or message.created
    full: dict[str, Any] = {
        "@odata.etag": etag(message),
        "id": message_id,
        "createdDateTime": ids.iso_z(message.created),
        "lastModifiedDateTime": ids.iso_z(message.last_modified),
        "changeKey": message.change_key,
        "categories": list(message.categories),
        "receivedDateTime": ids.iso_z(received),
        "sentDateTime": ids.iso_z(message.sent or message.created),
        "hasAttachments": any(not a.is_inline for a in message.attachments),
        "internetMessageId": message.internet_message_id,
        "subject": message.subject,
        "bodyPreview": body_preview(message),
        "importance": message.importance,
        "parentFolderId": mailbox.folder_ids[message.folder],
        "conversationId": message.conversation_id,
        "conversationIndex": _conversation_index(message),
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": False,
        "isRead": message.is_read,
        "isDraft": message.is_draft,
        "webLink": f"{web_base}/owa/?ItemID={quote(message_id, safe='')}&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": "focused",
        "body": _body(message, prefer_text),
        "sender": email_address(message.sender),
        "from": email_address(message.from_),
        "toRecipients": recipients(message.to),
        "ccRecipients": recipients(message.cc),
        "bccRecipients": recipients(message.bcc),
        "replyTo": recipients(message.reply_to),
        "flag": {"flagStatus": message.flag_status},
    }
    if not select:
        return full
    wanted = {s.lower() for s in select}
    picked: dict[str, Any] = {"@odata.etag": full["@odata.etag"], "id": message_id}
    for key, value in full.items():
        if key.lower() in wanted:
            picked[key] = value
    if "internetmessageheaders" in wanted:
        picked["internetMessageHeaders"] = internet_message_headers(message)
    if "uniquebody" in wanted:
        picked["uniqueBody"] = _body(message, prefer_text)
    if "attachments" in wanted:
        picked["attachments"] = [attachment_json(a, with_content=True) for a in message.attachments]
    return picked


def attachment_json(att: Attachment, *, with_content: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": att.content_type,
        "id": att.id,
        "lastModifiedDateTime": ids.iso_z(att.last_modified),
        "name": att.filename,
        "contentType": att.content_type,
        "size": len(att.data),
        "isInline": att.is_inline,
        "contentId": att.content_id,
        "contentLocation": None,
    }
    if with_content:
        data["contentBytes"] = base64.b64encode(att.data).decode("ascii")
    return data


def removed_json(message_id: str, reason: str) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.message", "id": message_id, "@removed": {"reason": reason}}


def folder_json(mailbox: Mailbox, folder: str, base: str) -> dict[str, Any]:
    names = {"inbox": "Inbox", "sentitems": "Sent Items", "drafts": "Drafts", "deleteditems": "Deleted Items"}
    messages = mailbox.in_folder(folder)
    return {
        "id": mailbox.folder_ids[folder],
        "displayName": names[folder],
        "parentFolderId": "AQMkADroot" + mailbox.user_id[:8],
        "childFolderCount": 0,
        "unreadItemCount": sum(1 for m in messages if not m.is_read),
        "totalItemCount": len(messages),
        # an estimate: rendering every message's MIME just to size it is too costly
        "sizeInBytes": sum(len(m.raw or b"") or len(m.body_html or m.body_text or "") + 500 for m in messages),
        "isHidden": False,
    }
