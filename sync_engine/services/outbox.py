"""Drain the outbox: send each committed CRM message through its route, once.

The route is the user's mailbox (an adapter of ``providers/``) or the sub-account's
SMTP relay (``providers/smtp.py``); both take the same ``SendCheckpoint``.
Claiming an item pushes its ``next_attempt_at`` forward, which doubles as a
lease: a second worker (or a retry) does not pick it up while an attempt runs.
The sender's checkpoint is committed before the irreversible call, so a retry after
a crash checks instead of sending again (a relay cannot be asked whether it got a
message: an attempt that reached DATA is recorded as ``uncertain``, never resent).

An attempt is load (``DeliveryFacts``, one read transaction) → decide (``plan_delivery``,
and ``after_failure`` once the provider answered with an error; both pure) → send →
write the outcome.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Attachment, EmailConnection, Message, OutboxItem, SubAccountEmailProvider, Thread
from db.repositories import connections as connections_repo
from db.repositories import messages as messages_repo
from db.repositories import outbox as repo
from db.repositories import relays as relays_repo
from db.repositories import threads as threads_repo
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
from sync_engine.events import DomainEvent, record_events
from sync_engine.services.collaborators import Clock, EventPublisher, SessionFactory
from sync_engine.services.connection_status import ConnectionStatuses
from sync_engine.services.mailboxes import Mailboxes
from sync_engine.services.relay_settings import RelaySettingsService
from vocabulary import ConnectionStatus, EventType, MessageStatus, OutboxStatus, SenderRoute

log = logging.getLogger(__name__)

# At least the worker's job timeout, so a slow attempt is never overlapped by the safety net.
ATTEMPT_LEASE = timedelta(minutes=11)
MAX_ATTEMPTS = 8
REAUTH_DETAIL = "the mailbox must be connected again"


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

    def __init__(self, sessions: SessionFactory, item: OutboxItem) -> None:
        self._sessions = sessions
        self._item_id = item.id
        self._sub_account_id = item.sub_account_id
        self._message_id = item.message_id
        self._attempt = item.attempts
        self._state: dict[str, Any] = dict(item.checkpoint or {})

    @property
    def state(self) -> Mapping[str, Any]:
        return self._state

    async def save(self, state: Mapping[str, Any]) -> None:
        self._state = dict(state)
        provider_id = state.get("provider_id") or state.get("draft_id")
        async with self._sessions.begin() as session:
            if not await repo.save_checkpoint(session, self._item_id, self._attempt, self._state):
                raise AttemptSuperseded(f"outbox item {self._item_id}: attempt {self._attempt} was superseded")
            if provider_id:
                # Known before sending, so the Sent-folder copy is recognised even if it syncs first.
                await threads_repo.set_provider_message_id(session, self._sub_account_id, self._message_id,
                                                           provider_id)


# ---- load and decide


@dataclass(frozen=True)
class DeliveryFacts:
    """What an attempt needs, read in one transaction. ``mailbox``/``reply_parent`` are read
    for the mailbox route, ``relay`` for the relay route."""

    item: OutboxItem
    message: Message | None
    thread: Thread | None
    attachments: list[Attachment] = field(default_factory=list)
    mailbox: EmailConnection | None = None
    reply_parent: Message | None = None  # the thread's newest message in that mailbox
    relay: SubAccountEmailProvider | None = None


@dataclass(frozen=True)
class Abandon:
    """The message or its thread is gone (deleted with its sub-account): nothing to send or record."""


@dataclass(frozen=True)
class GiveUp:
    """Final before any provider call: the route that was chosen is gone."""

    error: str


@dataclass(frozen=True)
class SendThroughMailbox:
    outgoing: OutgoingMessage
    mailbox: EmailConnection
    # The thread whose conversation id the send may teach us (a thread of this mailbox).
    learns_thread_key: uuid.UUID | None


@dataclass(frozen=True)
class SendThroughRelay:
    outgoing: OutgoingMessage
    relay: SubAccountEmailProvider


DeliveryPlan = Abandon | GiveUp | SendThroughMailbox | SendThroughRelay


def usable_for_sending(conn: EmailConnection | None) -> bool:
    return (conn is not None and conn.is_current and conn.status in ConnectionStatus.LIVE
            and conn.token_ciphertext is not None)


def plan_delivery(facts: DeliveryFacts) -> DeliveryPlan:
    """What this attempt does. Pure."""
    message, thread = facts.message, facts.thread
    if message is None or thread is None:
        return Abandon()
    if facts.item.route == SenderRoute.SUB_ACCOUNT:
        if facts.relay is None:
            return GiveUp("the sub-account's email provider was removed before sending")
        # From as queued (what the sender preview showed), through the relay configured now.
        sender = Address(message.from_email or facts.relay.from_email, message.from_name)
        return SendThroughRelay(outgoing_message(message, facts.attachments, sender), facts.relay)
    conn = facts.mailbox
    if conn is None or not usable_for_sending(conn):
        return GiveUp("the mailbox was disconnected before the email could be sent")
    parent = facts.reply_parent
    same_mailbox = thread.connection_id == conn.id
    outgoing = outgoing_message(
        message, facts.attachments, Address(conn.address, conn.display_name),
        reply_to_provider_id=parent.provider_message_id if parent is not None and parent.id != message.id else None,
        thread_key=thread.provider_thread_key if same_mailbox else None)
    return SendThroughMailbox(outgoing, conn, thread.id if same_mailbox else None)


def outgoing_message(message: Message, attachments: list[Attachment], sender: Address, *,
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


@dataclass(frozen=True)
class Superseded:
    """A newer attempt owns the item: this one leaves it alone."""


@dataclass(frozen=True)
class RetryAfter:
    delay: float  # seconds
    reason: str


@dataclass(frozen=True)
class Final:
    error: str
    status: MessageStatus = MessageStatus.FAILED  # or UNCERTAIN: may have gone out once
    reauth_required: bool = False  # the mailbox's access was revoked


FailureOutcome = Superseded | RetryAfter | Final


def transient_failure(exc: Exception, *, via_relay: bool) -> bool:
    """Neither a refusal, throttling, a lost claim nor the route's own final failure (a
    relay's lost answer, a mailbox's revoked access): retried with backoff."""
    final = DeliveryUncertain if via_relay else AuthRevokedError
    return not isinstance(exc, final | AttemptSuperseded | ThrottledError | PermanentSendError | ValueError)


def after_failure(exc: Exception, attempts: int, *, via_relay: bool) -> FailureOutcome:
    """What a failed attempt leads to. ``attempts`` counts this one (the claim). Pure."""
    if transient_failure(exc, via_relay=via_relay):
        if attempts >= MAX_ATTEMPTS:
            return Final("the provider could not be reached")
        return RetryAfter(min(600.0, 5.0 * 2 ** attempts), type(exc).__name__)
    if isinstance(exc, DeliveryUncertain):
        return Final("an earlier attempt handed the email to the SMTP server and its answer was lost; it is not "
                     "sent again, so it went out at most once", MessageStatus.UNCERTAIN)
    if isinstance(exc, AuthRevokedError):
        return Final(REAUTH_DETAIL, reauth_required=True)
    if isinstance(exc, AttemptSuperseded):
        return Superseded()
    if isinstance(exc, ThrottledError):
        return RetryAfter(exc.retry_after, "throttled by the provider")
    if isinstance(exc, PermanentSendError):
        return Final(str(exc) or "refused by the provider")
    # ValueError: the adapter could not build it (validation lets none through).
    return Final(f"the email could not be built: {exc}")


def outbox_status(status: MessageStatus) -> OutboxStatus:
    return OutboxStatus.UNCERTAIN if status is MessageStatus.UNCERTAIN else OutboxStatus.FAILED


# ---- the service


@dataclass(frozen=True)
class OutboxService:
    sessions: SessionFactory
    mailboxes: Mailboxes
    statuses: ConnectionStatuses
    events: EventPublisher
    clock: Clock
    relays: RelaySettingsService
    # How long a relay attempt is held: bounded by its SMTP timeouts (Settings.relay_send_lease_seconds).
    relay_send_lease: timedelta

    def attempt_lease(self, route: str) -> timedelta:
        """How long a claimed item is held. A relay send is bounded by its SMTP timeouts;
        a mailbox send may wait on provider throttling inside the adapter."""
        return self.relay_send_lease if route == SenderRoute.SUB_ACCOUNT else ATTEMPT_LEASE

    async def deliver(self, outbox_id: uuid.UUID) -> None:
        """Claim the item (unless another attempt holds it) and send it."""
        now = self.clock()
        async with self.sessions.begin() as session:
            route = await repo.route_of(session, outbox_id)
            if not await repo.claim(session, outbox_id, now, now + self.attempt_lease(route or "")):
                return
        await self.deliver_claimed(outbox_id)

    async def deliver_claimed(self, outbox_id: uuid.UUID) -> None:
        """Send an item this process has claimed; the outcome is committed on the item.
        Raises ``DeliveryDeferred`` when it was rescheduled (throttling, a transient failure)."""
        facts = await self._load(outbox_id)
        plan = plan_delivery(facts)
        item, message = facts.item, facts.message
        if isinstance(plan, Abandon) or message is None:
            return
        if isinstance(plan, GiveUp):
            await self._finish(item, message, Final(plan.error))
            return
        checkpoint = OutboxCheckpoint(self.sessions, item)
        if isinstance(plan, SendThroughRelay):
            try:
                sent = await self.relays.open_relay(self.relays.config_of(plan.relay)).send(plan.outgoing, checkpoint)
            except Exception as exc:
                await self._failed(item, message, exc, via_relay=True)
                return
            await self._sent(item, message, sent, learns_thread_key=None)
            return
        client = self.mailboxes.client_for(plan.mailbox)
        try:
            sent = await client.send(plan.outgoing, checkpoint)
        except Exception as exc:
            await self._failed(item, message, exc, via_relay=False, mailbox=plan.mailbox)
            return
        finally:
            await client.aclose()
        await self._sent(item, message, sent, learns_thread_key=plan.learns_thread_key)

    async def _load(self, outbox_id: uuid.UUID) -> DeliveryFacts:
        async with self.sessions.begin() as session:
            item = await repo.item_by_id(session, outbox_id)
            assert item is not None
            sub_account_id = item.sub_account_id
            message = await threads_repo.message_in_sub_account(session, sub_account_id, item.message_id)
            thread = (await messages_repo.thread_in_sub_account(session, sub_account_id, message.thread_id)
                      if message is not None else None)
            if message is None or thread is None:
                return DeliveryFacts(item, message, thread)
            attachments = await threads_repo.attachments_of_message(session, sub_account_id, message.id)
            if item.route == SenderRoute.SUB_ACCOUNT:
                relay = await relays_repo.relay_of(session, sub_account_id)
                return DeliveryFacts(item, message, thread, attachments, relay=relay)
            conn = await connections_repo.by_id(session, item.connection_id) if item.connection_id else None
            parent = None
            if conn is not None:
                parent = await messages_repo.latest_message_with_provider_id(session, sub_account_id, thread.id,
                                                                             conn.id)
            return DeliveryFacts(item, message, thread, attachments, mailbox=conn, reply_parent=parent)

    async def _failed(self, item: OutboxItem, message: Message, exc: Exception, *, via_relay: bool,
                      mailbox: EmailConnection | None = None) -> None:
        """Throttling and transient failures are retried with backoff; a refusal is final."""
        outcome = after_failure(exc, item.attempts, via_relay=via_relay)
        if isinstance(outcome, Superseded):
            log.warning("%s", exc)
            return
        if transient_failure(exc, via_relay=via_relay):
            log.warning("sending outbox item %s failed: %s", item.id, type(exc).__name__)
        if isinstance(outcome, RetryAfter):
            async with self.sessions.begin() as session:
                await repo.reschedule(session, item.id, self.clock() + timedelta(seconds=outcome.delay),
                                      outcome.reason)
            raise DeliveryDeferred(outcome.delay) from exc
        if outcome.reauth_required and mailbox is not None:
            await self.statuses.set(mailbox.id, ConnectionStatus.REAUTH_REQUIRED, REAUTH_DETAIL)
        await self._finish(item, message, outcome)

    async def _sent(self, item: OutboxItem, message: Message, sent: SentMessage, *,
                    learns_thread_key: uuid.UUID | None) -> None:
        refused = ", ".join(sent.refused_recipients)
        async with self.sessions.begin() as session:
            await repo.mark_done(session, item.id)
            await threads_repo.record_sent(session, message.sub_account_id, message.id,
                                           error=f"not delivered to: {refused}" if refused else None,
                                           provider_id=sent.provider_id, message_id_header=sent.message_id)
            if learns_thread_key is not None and sent.thread_key:
                await threads_repo.set_provider_thread_key(session, message.sub_account_id, learns_thread_key,
                                                           sent.thread_key)
            events = await _message_changed(session, message)
        await self.events.publish_all(events)

    async def _finish(self, item: OutboxItem, message: Message, outcome: Final) -> None:
        """A final outcome other than sent: ``failed``, or ``uncertain`` (may have gone out once)."""
        async with self.sessions.begin() as session:
            await repo.finish(session, item.id, outbox_status(outcome.status), outcome.error)
            await threads_repo.record_unsent(session, message.sub_account_id, message.id, outcome.status,
                                             outcome.error)
            events = await _message_changed(session, message)
        await self.events.publish_all(events)

    async def due_items(self, limit: int = 100) -> list[tuple[uuid.UUID, int]]:
        """Single sends due now, with their attempt count (bulk deliveries have their drain)."""
        async with self.sessions() as session:
            return await repo.due_single_items(session, self.clock(), limit)


async def _message_changed(session: AsyncSession, message: Message) -> list[DomainEvent]:
    events = [DomainEvent(type=EventType.MESSAGE_UPDATED, sub_account_id=str(message.sub_account_id),
                          thread_id=str(message.thread_id), message_id=str(message.id))]
    await record_events(session, events)
    return events
