"""Drain the outbox: send each committed CRM message through its route, once.

The route is the user's mailbox (an adapter of ``providers/``) or the sub-account's
SMTP relay (``providers/smtp.py``); both take the same ``SendCheckpoint``.
Claiming an item pushes its ``next_attempt_at`` forward, which doubles as a
lease: a second worker (or a retry) does not pick it up while an attempt runs.
The sender's checkpoint is committed before the irreversible call, so a retry after
a crash checks instead of sending again (a relay cannot be asked whether it got a
message: an attempt that reached DATA is recorded as ``uncertain``, never resent).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import Attachment, ConnectionStatus, EmailConnection, Message, OutboxItem, OutboxStatus, Thread
from db.repositories import mailbox_sync as repo
from db.repositories import sending as sending_repo
from sync_engine.domain import (
    Address,
    AuthRevokedError,
    DeliveryUncertain,
    OutgoingAttachment,
    OutgoingMessage,
    PermanentSendError,
    SentMessage,
    ThrottledError,
)
from sync_engine.events import DomainEvent, EventType, record_events
from sync_engine.rules.sender import SenderRoute
from sync_engine.runtime import Runtime
from sync_engine.services.connections import set_status
from sync_engine.services.relay_settings import config_of, open_relay
from sync_engine.services.tokens import client_for

log = logging.getLogger(__name__)

# At least the worker's job timeout, so a slow attempt is never overlapped by the safety net.
ATTEMPT_LEASE = timedelta(minutes=11)
MAX_ATTEMPTS = 8


class DeliveryDeferred(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


class AttemptSuperseded(Exception):
    """This attempt's claim lapsed and a newer attempt claimed the item: stop before sending."""


class OutboxCheckpoint:
    """Commits the adapter's progress, and the provider ids it already knows, on the outbox row.

    Fenced by the attempt number: a save succeeds only while this attempt is the latest
    claim of a pending item. An attempt whose lease lapsed (a slow relay) and was claimed
    again cannot reach the irreversible step after the newer one read the checkpoint, so
    two attempts never both send."""

    def __init__(self, rt: Runtime, item: OutboxItem) -> None:
        self._rt = rt
        self._item_id = item.id
        self._message_id = item.message_id
        self._attempt = item.attempts
        self._state: dict[str, Any] = dict(item.checkpoint or {})

    @property
    def state(self) -> Mapping[str, Any]:
        return self._state

    async def save(self, state: Mapping[str, Any]) -> None:
        self._state = dict(state)
        provider_id = state.get("provider_id") or state.get("draft_id")
        async with self._rt.sessions.begin() as session:
            saved = await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == self._item_id, OutboxItem.attempts == self._attempt,
                       OutboxItem.status == OutboxStatus.PENDING)
                .values(checkpoint=self._state)
            )
            if saved.rowcount != 1:
                raise AttemptSuperseded(f"outbox item {self._item_id}: attempt {self._attempt} was superseded")
            if provider_id:
                # Known before sending, so the Sent-folder copy is recognised even if it syncs first.
                await session.execute(
                    update(Message).where(Message.id == self._message_id).values(provider_message_id=provider_id)
                )


def attempt_lease(rt: Runtime, route: str) -> timedelta:
    """How long a claimed item is held. A relay send is bounded by its SMTP timeouts;
    a mailbox send may wait on provider throttling inside the adapter."""
    if route == SenderRoute.SUB_ACCOUNT.value:
        return timedelta(seconds=rt.settings.relay_send_lease_seconds)
    return ATTEMPT_LEASE


async def deliver(rt: Runtime, outbox_id: uuid.UUID) -> None:
    """Claim the item (unless another attempt holds it) and send it."""
    now = utcnow()
    async with rt.sessions.begin() as session:
        route = await session.scalar(select(OutboxItem.route).where(OutboxItem.id == outbox_id))
        claimed = await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == outbox_id, OutboxItem.status == OutboxStatus.PENDING, OutboxItem.next_attempt_at <= now)
            .values(attempts=OutboxItem.attempts + 1, next_attempt_at=now + attempt_lease(rt, route or ""))
        )
        if claimed.rowcount != 1:
            return
    await deliver_claimed(rt, outbox_id)


async def deliver_claimed(rt: Runtime, outbox_id: uuid.UUID) -> None:
    """Send an item this process has claimed; the outcome is committed on the item."""
    async with rt.sessions.begin() as session:
        item = await session.get(OutboxItem, outbox_id)
        assert item is not None
        message = await session.get(Message, item.message_id)
        thread = await session.get(Thread, message.thread_id) if message else None
        conn = await session.get(EmailConnection, item.connection_id) if item.connection_id else None
        attachments = list(await session.scalars(select(Attachment).where(Attachment.message_id == item.message_id)))
        parent = None
        if message is not None and thread is not None and conn is not None:
            parent = await repo.latest_message_with_provider_id(session, message.sub_account_id, thread.id, conn.id)
    if message is None or thread is None:
        return
    if item.route == SenderRoute.SUB_ACCOUNT.value:
        await _deliver_through_relay(rt, item, message, thread, attachments)
        return
    if conn is None or not conn.is_current or conn.status not in ConnectionStatus.LIVE or conn.token_ciphertext is None:
        await _finish(rt, item, message, failed="the mailbox was disconnected before the email could be sent")
        return

    outgoing = _outgoing(message, attachments, Address(conn.address, conn.display_name),
                         reply_to_provider_id=parent.provider_message_id if parent is not None and parent.id != message.id else None,
                         thread_key=thread.provider_thread_key if thread.connection_id == conn.id else None)
    client = client_for(rt, conn)
    try:
        sent = await client.send(outgoing, OutboxCheckpoint(rt, item))
    except AuthRevokedError:
        await set_status(rt, conn.id, ConnectionStatus.REAUTH_REQUIRED, "the mailbox must be connected again")
        await _finish(rt, item, message, failed="the mailbox must be connected again")
        return
    except Exception as exc:
        await _failed_attempt(rt, item, message, exc)
        return
    finally:
        await client.aclose()
    await _sent(rt, item, message, sent, thread_key_for=thread if thread.connection_id == conn.id else None)


def _outgoing(message: Message, attachments: list[Attachment], sender: Address, *,
              reply_to_provider_id: str | None = None, thread_key: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=message.message_id_header or f"<{uuid.uuid4().hex}@{sender.email.rsplit('@', 1)[-1]}>",
        sender=sender,
        to=[Address(a["email"], a.get("name")) for a in message.to_addresses],
        cc=[Address(a["email"], a.get("name")) for a in message.cc_addresses],
        bcc=[Address(a["email"], a.get("name")) for a in message.bcc_addresses],
        subject=message.subject,
        html=message.html,
        text=message.text,
        in_reply_to=message.in_reply_to,
        references=(message.references or "").split(),
        reply_to_provider_id=reply_to_provider_id,
        thread_key=thread_key,
        attachments=[OutgoingAttachment(a.filename, a.content_type, a.content or b"") for a in attachments],
    )


async def _deliver_through_relay(rt: Runtime, item: OutboxItem, message: Message, thread: Thread,
                                 attachments: list[Attachment]) -> None:
    async with rt.sessions() as session:
        relay = await sending_repo.relay_of(session, message.sub_account_id)
    if relay is None:
        await _finish(rt, item, message, failed="the sub-account's email provider was removed before sending")
        return
    # From as queued (what the sender preview showed), through the relay configured now.
    outgoing = _outgoing(message, attachments, Address(message.from_email or relay.from_email, message.from_name))
    try:
        sent = await open_relay(rt, config_of(rt, relay)).send(outgoing, OutboxCheckpoint(rt, item))
    except DeliveryUncertain:
        await _finish(rt, item, message, failed="an earlier attempt handed the email to the SMTP server and its "
                      "answer was lost; it is not sent again, so it went out at most once", status="uncertain")
        return
    except Exception as exc:
        await _failed_attempt(rt, item, message, exc)
        return
    await _sent(rt, item, message, sent, thread_key_for=None)


async def _failed_attempt(rt: Runtime, item: OutboxItem, message: Message, exc: Exception) -> None:
    """Throttling and transient failures are retried with backoff; a refusal is final."""
    if isinstance(exc, AttemptSuperseded):  # the newer attempt owns the item now
        log.warning("%s", exc)
        return
    if isinstance(exc, ThrottledError):
        await _reschedule(rt, item, exc.retry_after, "throttled by the provider")
        raise DeliveryDeferred(exc.retry_after) from exc
    if isinstance(exc, PermanentSendError):
        await _finish(rt, item, message, failed=str(exc) or "refused by the provider")
        return
    if isinstance(exc, ValueError):  # the adapter could not build it (validation lets none through)
        await _finish(rt, item, message, failed=f"the email could not be built: {exc}")
        return
    log.warning("sending outbox item %s failed: %s", item.id, type(exc).__name__)
    if item.attempts >= MAX_ATTEMPTS:  # ``attempts`` already counts this one (the claim)
        await _finish(rt, item, message, failed="the provider could not be reached")
        return
    delay = min(600.0, 5.0 * 2 ** item.attempts)
    await _reschedule(rt, item, delay, type(exc).__name__)
    raise DeliveryDeferred(delay) from exc


async def _sent(rt: Runtime, item: OutboxItem, message: Message, sent: SentMessage, *,
                thread_key_for: Thread | None) -> None:
    async with rt.sessions.begin() as session:
        await session.execute(
            update(OutboxItem).where(OutboxItem.id == item.id).values(status=OutboxStatus.DONE, last_error=None)
        )
        refused = ", ".join(sent.refused_recipients)
        values: dict[str, Any] = {"status": "sent", "error": f"not delivered to: {refused}" if refused else None}
        if sent.provider_id:
            values["provider_message_id"] = sent.provider_id
        if sent.message_id:
            values["message_id_header"] = sent.message_id
        await session.execute(update(Message).where(Message.id == message.id).values(**values))
        thread = thread_key_for
        if thread is not None and sent.thread_key and thread.provider_thread_key is None:
            await session.execute(update(Thread).where(Thread.id == thread.id).values(provider_thread_key=sent.thread_key))
        events = await _record_update(session, message)
    await rt.events.publish_all(events)


async def _reschedule(rt: Runtime, item: OutboxItem, delay: float, reason: str) -> None:
    async with rt.sessions.begin() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item.id)
            .values(next_attempt_at=utcnow() + timedelta(seconds=delay), last_error=reason)
        )


async def _finish(rt: Runtime, item: OutboxItem, message: Message, *, failed: str, status: str = "failed") -> None:
    """A final outcome other than sent: ``failed``, or ``uncertain`` (may have gone out once)."""
    outbox_status = OutboxStatus.UNCERTAIN if status == "uncertain" else OutboxStatus.FAILED
    async with rt.sessions.begin() as session:
        await session.execute(
            update(OutboxItem).where(OutboxItem.id == item.id).values(status=outbox_status, last_error=failed)
        )
        await session.execute(update(Message).where(Message.id == message.id).values(status=status, error=failed))
        events = await _record_update(session, message)
    await rt.events.publish_all(events)


async def _record_update(session: AsyncSession, message: Message) -> list[DomainEvent]:
    events = [DomainEvent(type=EventType.MESSAGE_UPDATED, sub_account_id=str(message.sub_account_id),
                          thread_id=str(message.thread_id), message_id=str(message.id))]
    await record_events(session, events)
    return events


async def due_items(rt: Runtime, limit: int = 100) -> list[tuple[uuid.UUID, int]]:
    """Single sends due now, with their attempt count (bulk deliveries have their drain)."""
    async with rt.sessions() as session:
        rows = await session.execute(
            select(OutboxItem.id, OutboxItem.attempts)
            .where(OutboxItem.status == OutboxStatus.PENDING, OutboxItem.next_attempt_at <= utcnow(),
                   OutboxItem.bulk_send_id.is_(None))
            .order_by(OutboxItem.next_attempt_at)
            .limit(limit)
        )
        return [(row.id, row.attempts) for row in rows]
