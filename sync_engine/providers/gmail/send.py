"""Sending through Gmail (``messages.send``) so that a retry never sends twice.

Protocol (the checkpoint is the outbox row's durable state, committed by the engine):

1. Validate and build the MIME (``ValueError`` on header injection, before any call).
   For a reply the Gmail ``threadId`` is the message's ``thread_key``, or, when only
   the replied-to message is known, that message's ``threadId``.
2. ``checkpoint.save({"attempted": True, "message_id", "saved_at", ...})``.
3. ``messages.send {"raw", "threadId"}``; a message over ``JSON_SEND_LIMIT`` goes to
   the upload URI instead (``uploadType=multipart``: ``{"threadId"}`` + the
   ``message/rfc822`` bytes), which takes up to 35 MB. Only answers that certainly did
   not send (``429``, rate-limit ``403``, connection refused) are retried here; a
   ``5xx`` or a connection lost mid-request surfaces as an error, and the engine
   retries later.

A retry whose checkpoint says ``attempted`` first looks for our Message-ID with
``messages.list?q=rfc822msgid:<id> in:sent`` (spam and trash included): found -> that
message is returned and nothing is sent. Not found: Gmail's search index can lag a
few seconds behind a send, and a request cut off mid-flight may still complete, so
within ``IN_FLIGHT_GRACE`` of the saved attempt the retry is deferred
(``ThrottledError``); after it, the message is sent (the earlier attempt never
reached Gmail).

A thread that no longer exists (``404``/``400`` on ``threadId``) does not lose the
email: it goes out as a new thread. Any other ``4xx`` is a ``PermanentSendError``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_engine.domain import (
    NotFoundError,
    OutgoingMessage,
    PermanentSendError,
    SentMessage,
    ThrottledError,
)
from sync_engine.providers.base import SendCheckpoint
from sync_engine.providers.gmail import compose, mapping
from sync_engine.providers.gmail.gmail_client import GmailClient, GmailError, message_path
from sync_engine.providers.gmail.quota import COSTS

log = logging.getLogger(__name__)

IN_FLIGHT_GRACE = timedelta(seconds=90)
# Above this, the message goes through the upload URI rather than base64 in JSON.
JSON_SEND_LIMIT = 4 * 1024 * 1024
_PERMANENT_STATUSES = frozenset({400, 403, 404, 413, 422})


async def send_message(api: GmailClient, message: OutgoingMessage, checkpoint: SendCheckpoint) -> SentMessage:
    mime = compose.build_mime(message)  # ValueError before any call
    raw = mime.as_bytes()
    if len(raw) > compose.MAX_RAW_BYTES:
        raise PermanentSendError("the message exceeds Gmail's 35 MB limit")
    message_id = mapping.normalize_message_id(message.message_id) or message.message_id

    state = dict(checkpoint.state or {})
    if state.get("attempted"):
        found = await find_sent(api, state.get("message_id") or message_id)
        if found is not None:
            return _sent_of(found, message_id, message.thread_key)
        saved_at = _parse_time(state.get("saved_at"))
        if saved_at is not None:
            remaining = (saved_at + IN_FLIGHT_GRACE - datetime.now(UTC)).total_seconds()
            if remaining > 0:
                raise ThrottledError(min(remaining, 60.0), "an earlier send may still be in flight")
        log.info("an earlier send attempt did not reach Gmail; sending now")

    thread_id = message.thread_key or await _thread_of(api, message.reply_to_provider_id)
    await checkpoint.save(
        {
            "attempted": True,
            "message_id": message_id,
            "thread_key": thread_id,
            "saved_at": datetime.now(UTC).isoformat(),
        }
    )
    try:
        try:
            sent = await _post_send(api, raw, thread_id)
        except (GmailError, NotFoundError) as exc:
            status = exc.status if isinstance(exc, GmailError) else 404
            if not thread_id or status not in (400, 404) or (status == 400 and "thread" not in str(exc).lower()):
                raise
            # Refused before sending: the thread is gone (or not ours); start a new one.
            log.info("the Gmail thread is gone; sending as a new thread")
            sent = await _post_send(api, raw, None)
    except GmailError as exc:
        if exc.status in _PERMANENT_STATUSES:
            raise PermanentSendError(f"Gmail refused the message: {exc}") from exc
        raise
    except NotFoundError as exc:
        raise PermanentSendError("Gmail refused the message (404)") from exc
    return _sent_of(sent, message_id, thread_id)


async def _post_send(api: GmailClient, raw: bytes, thread_id: str | None) -> dict[str, Any]:
    if len(raw) <= JSON_SEND_LIMIT:
        body: dict[str, Any] = {"raw": compose.raw_bytes_b64(raw)}
        if thread_id:
            body["threadId"] = thread_id
        return await api.post_json("messages/send", body, cost=COSTS["messages.send"], idempotent=False)
    boundary = f"emailsync_{uuid.uuid4().hex}"
    metadata = json.dumps({"threadId": thread_id} if thread_id else {}).encode()
    content = b"".join(
        (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            metadata,
            f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n".encode(),
            raw,
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
    response = await api.request(
        "POST",
        "",
        url=api.upload_url("messages/send"),
        params={"uploadType": "multipart"},
        content=content,
        headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        cost=COSTS["messages.send"],
        idempotent=False,
    )
    try:
        sent = response.json()
    except ValueError as exc:
        raise GmailError(response.status_code, None, "send answered without JSON") from exc
    if not isinstance(sent, dict):
        raise GmailError(response.status_code, None, "send answered with a non-object")
    return sent


async def _thread_of(api: GmailClient, provider_id: str | None) -> str | None:
    """The thread of the message replied to, when the engine knows only that message."""
    if not provider_id:
        return None
    try:
        item = await api.get_json(message_path(provider_id, "minimal"), cost=COSTS["messages.get"])
    except NotFoundError:
        return None
    return mapping.as_str(item.get("threadId"))


async def find_sent(api: GmailClient, message_id: str | None) -> Mapping[str, Any] | None:
    """The message carrying our Message-ID in the mailbox, if Gmail has it."""
    normalized = mapping.normalize_message_id(message_id)
    if not normalized:
        return None
    query = f"rfc822msgid:{normalized[1:-1]} in:sent"
    listing = await api.get_json(
        "messages",
        cost=COSTS["messages.list"],
        params=[("q", query), ("includeSpamTrash", "true"), ("maxResults", "10")],
    )
    for item in listing.get("messages") or []:
        if isinstance(item, Mapping) and isinstance(item.get("id"), str):
            return item
    return None


def _sent_of(item: Mapping[str, Any], message_id: str, thread_key: str | None) -> SentMessage:
    return SentMessage(
        provider_id=mapping.as_str(item.get("id")),
        thread_key=mapping.as_str(item.get("threadId")) or thread_key,
        message_id=message_id,
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
