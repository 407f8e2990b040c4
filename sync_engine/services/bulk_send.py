"""Bulk email: one delivery per recipient, each with its own result, paced to its route.

Queueing commits the ``BulkSend``, and for every recipient a thread, a message and an
outbox row, in one transaction (nothing is sent before it is recorded). One drain job
per bulk send then delivers them one by one at the route's pace
(``rules.sender.MAILBOX_SEND_RATE_PER_MINUTE`` or the relay's configured rate),
publishing progress after each delivery. The drain holds a lease on the bulk send,
renewed after every delivery, so there is one drain at a time; a drain stops after a
time budget and hands over to a fresh job, so no job outlives the worker's timeout.
When a worker dies mid-send, the periodic ``requeue_due_outbox`` starts a new drain once
the lease lapses; each delivery's own claim and checkpoint keep it exactly-once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from db.base import new_id
from db.models import BulkSend, Message, OutboxItem, Thread
from db.repositories import bulk_sends as repo
from db.repositories import connections as connections_repo
from db.repositories import contacts as contacts_repo
from db.repositories import outbox as outbox_repo
from db.repositories import relays as relays_repo
from sync_engine.events import DomainEvent, record_events
from sync_engine.job_queue import Jobs
from sync_engine.rules.outbound import check_bulk, missing_contacts
from sync_engine.rules.sender import MAILBOX_SEND_RATE_PER_MINUTE
from sync_engine.services import idempotency
from sync_engine.services.collaborators import Clock, EventPublisher, SessionFactory
from sync_engine.services.errors import ServiceError
from sync_engine.services.idempotency import IdempotencyService, IdempotentCall
from sync_engine.services.outbox import DeliveryDeferred, OutboxService
from sync_engine.services.send import new_message, raise_problem
from sync_engine.services.sender import SenderService
from vocabulary import BulkSendStatus, EmailKind, EventType, SenderRoute

# A drain job hands over to a fresh one after this long (well under the job timeout).
DRAIN_BUDGET_SECONDS = 120.0


@dataclass(slots=True)
class BulkRequest:
    recipients: list[str]
    subject: str
    html: str | None
    text: str | None
    from_address: str | None = None
    idempotency_key: str | None = None

    def unique_recipients(self) -> list[str]:
        seen: set[str] = set()
        out = []
        for address in self.recipients:
            key = address.strip().lower()
            if key not in seen:
                seen.add(key)
                out.append(address.strip())
        return out


class DrainDeferred(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"continue in {retry_after}s")
        self.retry_after = retry_after


def pace_seconds(route: str, mailbox_provider: str | None, relay_rate: int | None) -> float:
    """Seconds between two deliveries of a bulk send on ``route``."""
    if route == SenderRoute.SUB_ACCOUNT.value:
        return 60.0 / (relay_rate or 600)
    return 60.0 / MAILBOX_SEND_RATE_PER_MINUTE.get(mailbox_provider or "", 30)


@dataclass(frozen=True)
class BulkSendService:
    sessions: SessionFactory
    events: EventPublisher
    jobs: Jobs
    clock: Clock
    senders: SenderService
    idempotency: IdempotencyService
    outbox: OutboxService

    async def send_bulk_email(self, *, sub_account_id: uuid.UUID, user_id: uuid.UUID, request: BulkRequest,
                              caller: str) -> BulkSend:
        raise_problem(check_bulk(request.recipients, request.subject, request.html, request.text,
                                 request.from_address))
        recipients = request.unique_recipients()
        call = None
        if request.idempotency_key is not None:
            idempotency.check_key(request.idempotency_key)
            payload = {"recipients": recipients, "subject": request.subject, "html": request.html,
                       "text": request.text, "from": request.from_address, "user": str(user_id)}
            call = IdempotentCall(sub_account_id, caller, request.idempotency_key, "send:bulk",
                                  idempotency.fingerprint(payload))

        async def replay(bulk_send_id: uuid.UUID) -> BulkSend:
            async with self.sessions() as session:
                found = await repo.bulk_send(session, sub_account_id, bulk_send_id)
            assert found is not None
            return found

        async def perform() -> BulkSend:
            bulk, events = await self._queue(sub_account_id, user_id, recipients, request, call)
            await self.jobs.drain_bulk_send(bulk.id, reason="start", after_commit=True)
            await self.events.publish_all(events)
            await self.publish_progress(bulk.sub_account_id, bulk.id)
            return bulk

        return await self.idempotency.run_once(call, perform, replay)

    async def _queue(self, sub_account_id: uuid.UUID, user_id: uuid.UUID, recipients: list[str],
                     request: BulkRequest, call: IdempotentCall | None) -> tuple[BulkSend, list[DomainEvent]]:
        async with self.sessions.begin() as session:
            bulk_id = new_id()
            if call is not None:
                await self.idempotency.remember(session, call, bulk_id)
            sender = await self.senders.resolve_sender(session, sub_account_id, user_id, EmailKind.BULK,
                                                       request.from_address)
            sender.require_available()
            contacts = await contacts_repo.contacts_by_emails(session, sub_account_id, recipients)
            missing = missing_contacts(recipients, set(contacts))
            if missing:
                shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                raise ServiceError("NOT_A_CONTACT", f"not a contact of this sub-account: {shown}", "recipients")
            assert sender.from_email is not None
            route = sender.decision.route
            bulk = BulkSend(id=bulk_id, sub_account_id=sub_account_id, user_id=user_id, route=route,
                            route_reason=sender.decision.reason, from_email=sender.from_email,
                            subject=request.subject, status=BulkSendStatus.QUEUED, total=len(recipients))
            threads: list[Thread] = []
            messages: list[Message] = []
            items: list[OutboxItem] = []
            events: list[DomainEvent] = []
            sub = str(sub_account_id)
            now = self.clock()
            for address in recipients:
                contact = contacts[address.lower()]
                thread = Thread(id=new_id(), sub_account_id=sub_account_id, user_id=user_id, contact_id=contact.id,
                                connection_id=sender.connection_id, subject=request.subject)
                message = new_message(sender, EmailKind.BULK, thread=thread, message_id=new_id(),
                                      subject=request.subject, html=request.html, text=request.text, to=[address],
                                      bulk_send_id=bulk_id, now=now)
                thread.last_message_at, thread.snippet, thread.message_count = message.sent_at, message.snippet, 1
                threads.append(thread)
                messages.append(message)
                items.append(OutboxItem(id=new_id(), sub_account_id=sub_account_id, message_id=message.id,
                                        connection_id=sender.connection_id, route=route, bulk_send_id=bulk_id))
                events += [DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=sub, thread_id=str(thread.id)),
                           DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id=sub, thread_id=str(thread.id),
                                       message_id=str(message.id))]
            await repo.add_bulk_send(session, bulk, threads, messages, items)
            await record_events(session, events)
            return bulk, events

    async def publish_progress(self, sub_account_id: uuid.UUID, bulk_send_id: uuid.UUID) -> None:
        await self.events.publish(DomainEvent(type=EventType.BULK_SEND_PROGRESS, sub_account_id=str(sub_account_id),
                                              bulk_send_id=str(bulk_send_id)))

    async def drain(self, bulk_send_id: uuid.UUID, budget_seconds: float = DRAIN_BUDGET_SECONDS) -> None:
        """Deliver a bulk send's due deliveries, paced, for up to ``budget_seconds``. Raises
        ``DrainDeferred`` when the rest must wait (a retry's backoff, or a lapsed claim)."""
        started = time.monotonic()
        async with self.sessions.begin() as session:
            bulk = await repo.bulk_send_by_id(session, bulk_send_id)
            if bulk is None or bulk.status == BulkSendStatus.COMPLETED:
                return
            relay = await relays_repo.relay_of(session, bulk.sub_account_id)
            conn = None
            if bulk.route == SenderRoute.MAILBOX and bulk.user_id is not None:
                conn = await connections_repo.current_connection(session, bulk.sub_account_id, bulk.user_id)
            pace = pace_seconds(bulk.route, conn.provider if conn else None, relay.max_per_minute if relay else None)
            lease = self.outbox.attempt_lease(bulk.route) + timedelta(seconds=pace + 5)
            if not await repo.take_drain_lease(session, bulk_send_id, self.clock(), lease):
                return  # another drain is running it
            sub_account_id = bulk.sub_account_id
            route = bulk.route
        while time.monotonic() - started < budget_seconds:
            async with self.sessions.begin() as session:
                now = self.clock()
                outbox_id = await outbox_repo.claim_next_bulk_delivery(session, bulk_send_id, now,
                                                                       now + self.outbox.attempt_lease(route))
                await repo.renew_drain_lease(session, bulk_send_id, now + lease)
            if outbox_id is None:
                break
            try:
                await self.outbox.deliver_claimed(outbox_id)
            except DeliveryDeferred:
                pass  # rescheduled on its row; picked up when due
            await self._after_delivery(sub_account_id, bulk_send_id)
            # From one delivery's end to the next one's start: the relay sees at most its rate.
            await asyncio.sleep(pace)
        else:
            await self._release_drain_lease(bulk_send_id)
            await self.jobs.drain_bulk_send(bulk_send_id, reason=uuid.uuid4().hex[:8], after_commit=True)
            return
        await self._release_drain_lease(bulk_send_id)
        async with self.sessions.begin() as session:
            next_at = await outbox_repo.next_bulk_attempt_at(session, bulk_send_id)
            await repo.recount_bulk_send(session, bulk_send_id, self.clock())
        await self.publish_progress(sub_account_id, bulk_send_id)
        if next_at is not None:
            raise DrainDeferred(max(0.5, (next_at - self.clock()).total_seconds()))

    async def _after_delivery(self, sub_account_id: uuid.UUID, bulk_send_id: uuid.UUID) -> None:
        async with self.sessions.begin() as session:
            await repo.recount_bulk_send(session, bulk_send_id, self.clock())
        await self.publish_progress(sub_account_id, bulk_send_id)

    async def _release_drain_lease(self, bulk_send_id: uuid.UUID) -> None:
        async with self.sessions.begin() as session:
            await repo.renew_drain_lease(session, bulk_send_id, None)

    async def stranded_bulk_sends(self) -> list[uuid.UUID]:
        """Bulk sends with due deliveries and no live drain (lost job, dead worker)."""
        async with self.sessions() as session:
            return await repo.stranded_bulk_sends(session, self.clock())
