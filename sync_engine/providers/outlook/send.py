"""Sending through the mailbox with Graph drafts, so that a retry never sends twice.

Protocol (the checkpoint is the outbox row's durable state, committed by the engine):

1. Validate everything header-like (CR/LF injection, recipients) - before any call.
2. Build a complete draft:
   - new thread: ``POST /me/messages`` with subject, body, recipients and our
     Message-ID (``internetMessageId`` is writable while ``isDraft``);
   - reply: ``POST /me/messages/{id}/createReply`` (Graph sets In-Reply-To,
     References and the conversation), then ``PATCH`` body, recipients, subject and
     Message-ID. If the replied-to message is gone, the message goes out as a new one.
   - attachments: ``POST .../attachments`` (< 3 MB) or an upload session (larger).
   When the draft needs more than one call, ``{"draft_id", "ready": false}`` is saved
   first, so that a crash mid-way leaves a draft the retry deletes and rebuilds
   (a half-built draft is never sent).
3. Save ``{"draft_id", "ready": true, "saved_at", ...}``, then ``POST .../send``.

A retry that finds a ready draft id reads it (immutable ids: the Sent Items copy
keeps the draft's id):
- not a draft any more -> it went out: return it, send nothing;
- still a draft -> the send never happened: send it now;
- 404 -> look it up by our Message-ID; found and sent -> return it. Otherwise the
  item may be in transit (Graph moves it through the Outbox; "the copy is not
  created until the message is sent successfully"): within ``IN_FLIGHT_GRACE`` the
  retry is deferred (``ThrottledError``), after it the send fails for good
  (``PermanentSendError``) rather than risk a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_engine.domain import (
    NotFoundError,
    OutgoingAttachment,
    OutgoingMessage,
    PermanentSendError,
    SentMessage,
    ThrottledError,
)
from sync_engine.providers.base import SendCheckpoint
from sync_engine.providers.outlook import mapping
from sync_engine.providers.outlook.graph_client import GraphClient, GraphError
from sync_engine.providers.outlook.sync import quote_id

log = logging.getLogger(__name__)

INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024  # Graph: larger files need an upload session
UPLOAD_CHUNK = 10 * 320 * 1024  # a multiple of 320 KiB, under the 4 MB request cap
MAX_ATTACHMENT_SIZE = 150 * 1024 * 1024  # Graph's upload-session ceiling
IN_FLIGHT_GRACE = timedelta(minutes=10)
_PERMANENT_STATUSES = frozenset({400, 403, 413, 415, 422})
_DRAFT_SELECT = "id,isDraft,conversationId,internetMessageId,parentFolderId"


async def send_message(graph: GraphClient, message: OutgoingMessage, checkpoint: SendCheckpoint) -> SentMessage:
    mapping.validate_outgoing(message)
    for att in message.attachments:
        if len(att.content) > MAX_ATTACHMENT_SIZE:
            raise PermanentSendError(f"attachment {att.filename!r} exceeds Graph's 150 MB limit")

    state = dict(checkpoint.state or {})
    draft_id = state.get("draft_id")
    if isinstance(draft_id, str) and draft_id:
        if state.get("ready"):
            return await _resume(graph, message, state)
        await _delete_quietly(graph, draft_id)  # half-built by an earlier attempt

    try:
        draft = await _build_draft(graph, message, checkpoint)
    except GraphError as exc:
        if exc.status in _PERMANENT_STATUSES:
            raise PermanentSendError(f"Graph refused the draft: {exc}") from exc
        raise
    sent = _sent_of(draft, message)
    await checkpoint.save(
        {
            "draft_id": draft["id"],
            "ready": True,
            "saved_at": datetime.now(UTC).isoformat(),
            "message_id": sent.message_id,
            "thread_key": sent.thread_key,
        }
    )
    await _post_send(graph, draft["id"])
    return sent


# ---- building the draft


async def _build_draft(graph: GraphClient, message: OutgoingMessage, checkpoint: SendCheckpoint) -> dict[str, Any]:
    reply_to = message.reply_to_provider_id or await _latest_in_thread(graph, message.thread_key)
    draft: dict[str, Any] | None = None
    if reply_to:
        try:
            draft = await graph.post_json(f"/me/messages/{quote_id(reply_to)}/createReply", {})
        except NotFoundError:
            log.info("replied-to message is gone; sending as a new message")
    if draft is not None:
        await _save_in_progress(graph, checkpoint, draft["id"])
        draft = await _patch_reply(graph, draft["id"], message)
    else:
        draft = await graph.post_json("/me/messages", mapping.draft_fields(message))
        if message.attachments:
            await _save_in_progress(graph, checkpoint, draft["id"])
    if not isinstance(draft.get("id"), str):
        raise GraphError(502, None, "draft without an id")
    for attachment in message.attachments:
        await _attach(graph, draft["id"], attachment)
    return draft


async def _patch_reply(graph: GraphClient, draft_id: str, message: OutgoingMessage) -> dict[str, Any]:
    """Put our body, recipients, subject and Message-ID on a createReply draft.
    Graph documents ``internetMessageId`` as writable on drafts; should a server refuse
    it, the reply keeps the Message-ID Graph chose, and ``SentMessage.message_id``
    reports that one (so the Sent Items copy is still recognised)."""
    path = f"/me/messages/{quote_id(draft_id)}"
    fields = mapping.draft_fields(message)
    try:
        return await graph.patch_json(path, fields)
    except GraphError as exc:
        if exc.status != 400 or "internetmessageid" not in str(exc).lower():
            raise
    log.info("Graph refused internetMessageId on the reply draft; keeping Graph's Message-ID")
    fields.pop("internetMessageId")
    return await graph.patch_json(path, fields)


async def _save_in_progress(graph: GraphClient, checkpoint: SendCheckpoint, draft_id: str) -> None:
    try:
        await checkpoint.save({"draft_id": draft_id, "ready": False})
    except Exception:
        await _delete_quietly(graph, draft_id)  # no trace of it would survive otherwise
        raise


async def _latest_in_thread(graph: GraphClient, thread_key: str | None) -> str | None:
    """A message of the conversation to reply to, when only the thread key is known."""
    if not thread_key:
        return None
    escaped = thread_key.replace("'", "''")
    try:
        page = await graph.get_json(
            "/me/messages",
            params={
                "$filter": f"conversationId eq '{escaped}'",
                "$select": "id,receivedDateTime,isDraft",
                "$top": "50",
            },
        )
    except (GraphError, NotFoundError):
        return None
    candidates = [
        m
        for m in page.get("value") or []
        if isinstance(m, Mapping) and isinstance(m.get("id"), str) and not mapping.as_bool(m.get("isDraft"))
    ]
    if not candidates:
        return None
    latest = max(candidates, key=lambda m: mapping.as_datetime(m.get("receivedDateTime")) or datetime.min.replace(tzinfo=UTC))
    return latest["id"]


async def _attach(graph: GraphClient, draft_id: str, attachment: OutgoingAttachment) -> None:
    base = f"/me/messages/{quote_id(draft_id)}/attachments"
    if len(attachment.content) < INLINE_ATTACHMENT_LIMIT:
        await graph.post_json(base, mapping.file_attachment(attachment))
        return
    session = await graph.post_json(
        f"{base}/createUploadSession",
        {
            "AttachmentItem": {
                "attachmentType": "file",
                "name": attachment.filename,
                "size": len(attachment.content),
                "contentType": attachment.content_type,
            }
        },
    )
    upload_url = session.get("uploadUrl")
    if not isinstance(upload_url, str):
        raise PermanentSendError("Graph upload session without an uploadUrl")
    total = len(attachment.content)
    for start in range(0, total, UPLOAD_CHUNK):
        chunk = attachment.content[start : start + UPLOAD_CHUNK]
        end = start + len(chunk) - 1
        # The uploadUrl embeds its own auth token; an Authorization header is refused.
        await graph.upload_chunk(upload_url, chunk, f"bytes {start}-{end}/{total}")


# ---- sending and resuming


async def _post_send(graph: GraphClient, draft_id: str) -> None:
    try:
        await graph.request("POST", f"/me/messages/{quote_id(draft_id)}/send", content=b"")
    except GraphError as exc:
        if exc.status in _PERMANENT_STATUSES:
            raise PermanentSendError(f"Graph refused to send: {exc}") from exc
        raise


async def _resume(graph: GraphClient, message: OutgoingMessage, state: Mapping[str, Any]) -> SentMessage:
    draft_id = state["draft_id"]
    try:
        item = await graph.get_json(f"/me/messages/{quote_id(draft_id)}", params={"$select": _DRAFT_SELECT})
    except NotFoundError:
        found = await _find_by_message_id(graph, state.get("message_id") or message.message_id)
        if found is not None and not mapping.as_bool(found.get("isDraft")):
            return _sent_of(found, message)
        saved_at = mapping.as_datetime(state.get("saved_at"))
        if saved_at is not None:
            remaining = (saved_at + IN_FLIGHT_GRACE - datetime.now(UTC)).total_seconds()
            if remaining > 0:
                raise ThrottledError(min(remaining, 60.0), "an earlier send may still be in flight") from None
        raise PermanentSendError(
            "the draft of an earlier attempt vanished; not resending to avoid a duplicate"
        ) from None
    if not mapping.as_bool(item.get("isDraft")):
        return _sent_of(item, message)  # the earlier attempt went out
    await _post_send(graph, draft_id)
    return _sent_of(item, message)


async def _find_by_message_id(graph: GraphClient, message_id: str | None) -> Mapping[str, Any] | None:
    normalized = mapping.normalize_message_id(message_id)
    if not normalized:
        return None
    escaped = normalized.replace("'", "''")
    try:
        page = await graph.get_json(
            "/me/messages",
            params={"$filter": f"internetMessageId eq '{escaped}'", "$select": _DRAFT_SELECT},
        )
    except (GraphError, NotFoundError):
        return None
    for item in page.get("value") or []:
        if isinstance(item, Mapping) and isinstance(item.get("id"), str):
            return item
    return None


async def _delete_quietly(graph: GraphClient, draft_id: str) -> None:
    try:
        await graph.request("DELETE", f"/me/messages/{quote_id(draft_id)}")
    except NotFoundError:
        pass
    except GraphError as exc:
        log.warning("could not delete an abandoned draft: %s", exc.status)


def _sent_of(item: Mapping[str, Any], message: OutgoingMessage) -> SentMessage:
    return SentMessage(
        provider_id=item.get("id") if isinstance(item.get("id"), str) else None,
        thread_key=mapping.as_str(item.get("conversationId")) or message.thread_key,
        message_id=mapping.normalize_message_id(mapping.as_str(item.get("internetMessageId")))
        or mapping.normalize_message_id(message.message_id)
        or message.message_id,
    )
