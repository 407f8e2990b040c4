"""Store messages rendered as Gmail ``Message`` resources.

Every view derives from the message's RFC 5322 bytes, as Gmail's does:
``raw`` is their base64url; ``full`` is the MIME part tree (root ``partId``
"", children "0", "1", grandchildren "0.0", ...; containers carry
``body: {size: 0}``, leaves their transfer-decoded bytes as base64url ``data``
or, for parts with a filename, an ``attachmentId`` to fetch separately);
``metadata`` keeps the root headers; ``minimal`` none of the payload.

Attachment ids name the MIME part (MAC-protected, so only this sandbox can
mint them) plus a random nonce: like Gmail's, they differ on every fetch of
the same message, and apps must not use them as stable keys.
"""

from __future__ import annotations

import base64
import email
import email.errors
import email.header
import email.policy
import hashlib
import hmac
import html
import re
import secrets
from dataclasses import dataclass, field
from email.message import Message as StdMessage
from typing import Any

from sandbox import ids, mime
from sandbox.google.history import history_id
from sandbox.google.state import GoogleState
from sandbox.store import Mailbox, Message

FORMATS = ("full", "metadata", "minimal", "raw")
SNIPPET_LENGTH = 200
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# Order Gmail tends to list system labels in; user labels go before the folder labels.
_LABEL_ORDER = {name: i for i, name in enumerate(
    ["UNREAD", "STARRED", "IMPORTANT", "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS",
     "CATEGORY_UPDATES", "CATEGORY_FORUMS", "SPAM", "TRASH", "DRAFT", "SENT", "INBOX"])}


def b64url(data: bytes) -> str:
    """Gmail's byte fields: URL-safe alphabet, padded."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def label_ids(message: Message) -> list[str]:
    return sorted(message.labels, key=lambda label: (_LABEL_ORDER.get(label, 5.5), label))


def internal_date_ms(message: Message) -> int:
    moment = message.received or message.sent or message.created
    return int(moment.timestamp() * 1000)


def snippet(message: Message) -> str:
    text = mime.preview(message.body_text, message.body_html)[:SNIPPET_LENGTH]
    return html.escape(text).replace("&#x27;", "&#39;")


@dataclass
class Part:
    """One node of a message's MIME tree."""

    part_id: str
    mime_type: str
    filename: str
    headers: list[tuple[str, str]]
    data: bytes = b""
    children: list[Part] = field(default_factory=list)

    @property
    def container(self) -> bool:
        return self.mime_type.startswith("multipart/")


def _header_value(value: Any) -> str:
    """Unfolded, with RFC 2047 encoded words decoded (Gmail returns readable values)."""
    text = _FOLD.sub("", str(value)).strip()
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (email.errors.HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return text


def _filename(part: StdMessage) -> str:
    try:
        name = part.get_filename()
    except Exception:  # malformed RFC 2231 parameters
        name = None
    return _header_value(name) if name else ""


def _leaf_bytes(part: StdMessage) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes()
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    return payload if isinstance(payload, bytes) else b""


def parse_tree(raw: bytes) -> Part:
    root = email.message_from_bytes(raw, policy=email.policy.compat32)

    def build(node: StdMessage, part_id: str) -> Part:
        headers = [(name, _header_value(value)) for name, value in node.raw_items()]
        part = Part(part_id, node.get_content_type(), _filename(node), headers)
        if node.get_content_maintype() == "multipart" and isinstance(node.get_payload(), list):
            prefix = f"{part_id}." if part_id else ""
            part.children = [build(child, f"{prefix}{i}") for i, child in enumerate(node.get_payload())]
        else:
            part.data = _leaf_bytes(node)
        return part

    return build(root, "")


def find_part(tree: Part, part_id: str) -> Part | None:
    if tree.part_id == part_id:
        return tree
    for child in tree.children:
        found = find_part(child, part_id)
        if found is not None:
            return found
    return None


# -- attachment ids --------------------------------------------------------------


def _mac(state: GoogleState, message_id: str, payload: bytes) -> bytes:
    return hmac.new(state.attachment_secret, message_id.encode() + b"|" + payload, hashlib.sha256).digest()[:18]


def attachment_id(state: GoogleState, message_id: str, part_id: str) -> str:
    payload = secrets.token_bytes(12) + part_id.encode()
    token = base64.urlsafe_b64encode(payload + _mac(state, message_id, payload)).rstrip(b"=").decode()
    return "ANGjdJ" + token


def part_of_attachment(state: GoogleState, message_id: str, attachment: str) -> str | None:
    """The part id an attachment id names, if it was minted for this message."""
    if not attachment.startswith("ANGjdJ"):
        return None
    token = attachment[6:]
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    payload, mac = blob[:-18], blob[-18:]
    if len(payload) < 12 or not hmac.compare_digest(mac, _mac(state, message_id, payload)):
        return None
    return payload[12:].decode(errors="replace")


# -- resources -------------------------------------------------------------------


def _part_json(state: GoogleState, message: Message, part: Part) -> dict[str, Any]:
    body: dict[str, Any]
    if part.container:
        body = {"size": 0}
    elif part.filename:
        body = {"attachmentId": attachment_id(state, message.id, part.part_id), "size": len(part.data)}
    else:
        body = {"size": len(part.data)}
        if part.data:
            body["data"] = b64url(part.data)
    result: dict[str, Any] = {
        "partId": part.part_id,
        "mimeType": part.mime_type,
        "filename": part.filename,
        "headers": [{"name": name, "value": value} for name, value in part.headers],
        "body": body,
    }
    if part.children:
        result["parts"] = [_part_json(state, message, child) for child in part.children]
    return result


def message_resource(
    state: GoogleState, mailbox: Mailbox, message: Message, fmt: str = "full",
    metadata_headers: list[str] | None = None,
) -> dict[str, Any]:
    """users.messages.get in the given format (key order as Gmail's)."""
    raw = message.mime
    resource: dict[str, Any] = {
        "id": message.id,
        "threadId": message.conversation_id,
        "labelIds": label_ids(message),
        "snippet": snippet(message),
    }
    if fmt == "raw":
        resource["sizeEstimate"] = len(raw)
        resource["raw"] = b64url(raw)
    resource["historyId"] = str(history_id(state, mailbox, message.history_seq))
    resource["internalDate"] = str(internal_date_ms(message))
    if fmt == "full":
        resource["payload"] = _part_json(state, message, parse_tree(raw))
    elif fmt == "metadata":
        tree = parse_tree(raw)
        wanted = {h.lower() for h in metadata_headers or []}
        headers = [(n, v) for n, v in tree.headers if not wanted or n.lower() in wanted]
        resource["payload"] = {
            "partId": "",
            "mimeType": tree.mime_type,
            "filename": "",
            "headers": [{"name": n, "value": v} for n, v in headers],
        }
    if fmt != "raw":
        resource["sizeEstimate"] = len(raw)
    return resource


def message_ref(message: Message) -> dict[str, Any]:
    return {"id": message.id, "threadId": message.conversation_id}


def labels_only(message: Message) -> dict[str, Any]:
    """What modify/trash/untrash/send answer with."""
    return {"id": message.id, "threadId": message.conversation_id, "labelIds": label_ids(message)}


def thread_resource(
    state: GoogleState, mailbox: Mailbox, messages: list[Message], fmt: str, metadata_headers: list[str] | None,
) -> dict[str, Any]:
    messages = sorted(messages, key=lambda m: (internal_date_ms(m), m.id))
    last_seq = max(m.history_seq for m in messages)
    return {
        "id": messages[0].conversation_id,
        "historyId": str(history_id(state, mailbox, last_seq)),
        "messages": [message_resource(state, mailbox, m, fmt, metadata_headers) for m in messages],
    }


def now_ms() -> int:
    return int(ids.utcnow().timestamp() * 1000)
