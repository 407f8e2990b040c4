"""``users.messages.send``: JSON ``{raw, threadId}``, or the upload forms
``/upload/gmail/v1/users/{user}/messages/send?uploadType=media`` (the
RFC 822 bytes as the body) and ``uploadType=multipart`` (JSON metadata +
the message, multipart/related).

What Gmail does with the submitted message, and so does this:
- it keeps the client's Message-ID (adding one, and Date, only when absent)
  and sets From to the account's address;
- it joins ``threadId`` only if the message's References/In-Reply-To name a
  message of that thread *and* the subject matches (ignoring Re:/Fwd:);
  otherwise the message starts a new thread. Without ``threadId`` it always
  starts a new thread in the sender's mailbox;
- the sender's copy gets SENT (not UNREAD); every recipient that is a
  sandbox mailbox receives a copy in its inbox.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import re
import secrets
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from sandbox import mailflow, mime
from sandbox.context import Sandbox
from sandbox.google.gmail_common import GMAIL_PREFIX, GmailCall, gmail_endpoint, gmail_json, invalid, not_found
from sandbox.google.views import labels_only
from sandbox.mailflow import Outgoing
from sandbox.store import Address, Message

_RAW_REQUIRED = "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
_HEADER_NAME = re.compile(rb"^([!-9;-~]+):", re.M)


def decode_raw(value: Any) -> bytes:
    """Gmail's ``raw`` is base64url; standard base64 and missing padding are accepted too."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(_RAW_REQUIRED)
    compact = "".join(value.split())
    try:
        return base64.b64decode(compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Invalid value for ByteString: " + value[:40]) from None


def gmail_message_id() -> str:
    return f"<CA{secrets.token_urlsafe(36)}@mail.gmail.com>"


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block, the blank line, body); the newline style is kept."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = raw.find(separator)
        if index != -1:
            return raw[:index], separator, raw[index + len(separator):]
    return raw, b"", b""


def complete_headers(raw: bytes, sender: str, message_id: str | None) -> bytes:
    """Add Message-ID and Date when absent and put the account address in From."""
    head, blank, body = _split(raw)
    newline = b"\r\n" if b"\r\n" in head or not head else b"\n"
    lines = head.split(newline) if head else []
    kept: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.lower().startswith(b"from:")
        if not dropping:
            kept.append(line)
    names = {m.group(1).lower() for m in _HEADER_NAME.finditer(newline.join(kept))}
    added = [f"From: {sender}".encode()]
    if b"message-id" not in names and message_id:
        added.append(f"Message-ID: {message_id}".encode())
    if b"date" not in names:
        added.append(f"Date: {email.utils.formatdate(localtime=False)}".encode())
    return newline.join([*added, *kept]) + (blank or newline * 2) + body


def _thread_to_join(call: GmailCall, thread_id: Any, parsed: mime.ParsedMail) -> str | None:
    if not thread_id:
        return None
    if not isinstance(thread_id, str) or not re.fullmatch(r"[0-9a-fA-F]{1,16}", thread_id):
        raise invalid("Invalid thread_id value")
    thread = [m for m in call.mailbox.messages.values() if m.conversation_id == thread_id.lower()]
    if not thread:
        raise not_found()
    named = {r.lower() for r in [parsed.in_reply_to, *parsed.references] if r}
    refers = any(m.internet_message_id.lower() in named for m in thread)
    subject = mailflow.thread_subject(parsed.subject)
    same_subject = any(mailflow.thread_subject(m.subject) == subject for m in thread)
    return thread_id.lower() if refers and same_subject else None


def send_raw(call: GmailCall, raw: bytes, thread_id: Any) -> Message:
    parsed = mime.parse(raw)
    if not (parsed.to or parsed.cc or parsed.bcc):
        raise invalid("Recipient address required")
    conversation = _thread_to_join(call, thread_id, parsed)
    mailbox = call.mailbox
    message_id = parsed.message_id or gmail_message_id()
    name = parsed.from_.name if parsed.from_ and parsed.from_.same(mailbox.address) and parsed.from_.name else mailbox.name
    sender = mime.format_address(Address(address=mailbox.address, name=name))
    stored = complete_headers(raw, sender, None if parsed.message_id else message_id)
    mail = Outgoing(
        to=parsed.to, cc=parsed.cc, bcc=parsed.bcc, reply_to=parsed.reply_to, subject=parsed.subject,
        html=parsed.html, text=parsed.text if parsed.text is not None or parsed.html is not None else "",
        attachments=[
            mailflow.new_attachment(mailbox, a.filename, a.content_type, a.data, content_id=a.content_id, is_inline=a.is_inline)
            for a in parsed.attachments
        ],
        in_reply_to=parsed.in_reply_to, references=parsed.references, custom_headers=parsed.custom_headers,
        internet_message_id=message_id,
    )
    return mailflow.send(call.sandbox.store, mailbox, mail, conversation_id=conversation, auto_thread=False, raw=stored)


async def send(call: GmailCall) -> Response:
    body = await call.json()
    sent = send_raw(call, decode_raw(body.get("raw")), body.get("threadId"))
    return gmail_json(labels_only(sent))


def _multipart_related(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """(JSON metadata, message bytes) of a multipart/related upload.

    Split by hand: the email package would re-serialize the message/rfc822
    part, and the sent copy must keep the client's exact bytes.
    """
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise invalid("Multipart upload needs a boundary")
    delimiter = b"--" + match.group(1).encode()
    chunks = body.split(delimiter)[1:]
    parts = []
    for chunk in chunks:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        _head, blank, content = _split(chunk)
        # the line break before the next delimiter belongs to the delimiter
        content = content[:-2] if content.endswith(b"\r\n") else content.removesuffix(b"\n")
        parts.append(content if blank else b"")
    if len(parts) != 2:
        raise invalid("Multipart upload needs a metadata part and a media part")
    try:
        metadata = json.loads(parts[0] or b"{}")
    except ValueError:
        raise invalid("Invalid JSON payload received.") from None
    return (metadata if isinstance(metadata, dict) else {}), parts[1]


async def upload_send(call: GmailCall) -> Response:
    upload_type = call.param("uploadType")
    body = await call.request.body()
    if upload_type == "media":
        metadata: dict[str, Any] = {}
        raw = body
    elif upload_type == "multipart":
        metadata, raw = _multipart_related(call.request.headers.get("content-type", ""), body)
    else:
        raise invalid("Upload requests must specify an uploadType url parameter of media or multipart "
                      "(resumable uploads are not simulated)")
    if not raw.strip():
        raise invalid(_RAW_REQUIRED)
    sent = send_raw(call, raw, metadata.get("threadId"))
    return gmail_json(labels_only(sent))


def routes(sandbox: Sandbox) -> list[Route]:
    return [
        Route(GMAIL_PREFIX + "/messages/send", gmail_endpoint(sandbox, "messages.send", send), methods=["POST"]),
        Route("/upload" + GMAIL_PREFIX + "/messages/send", gmail_endpoint(sandbox, "messages.send", upload_send),
              methods=["POST"]),
    ]
