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
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert

from db.base import new_id, utcnow
from db.models import BulkSend, BulkSendStatus, Message, OutboxItem, Thread
from db.repositories import mailbox_sync
from db.repositories import sending as repo
from sync_engine.events import DomainEvent, EventType, record_events
from sync_engine.queue import enqueue_after_commit
from sync_engine.rules.outbound import check_bulk, missing_contacts
from sync_engine.rules.sender import MAILBOX_SEND_RATE_PER_MINUTE, EmailKind, SenderRoute
from sync_engine.runtime import Runtime
from sync_engine.services import idempotency, outbox
from sync_engine.services.errors import ServiceError
from sync_engine.services.send import new_message, raise_problem
from sync_engine.services.sender import resolve_sender

log = logging.getLogger(__name__)

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


async def send_bulk_email(rt: Runtime, *, sub_account_id: uuid.UUID, user_id: uuid.UUID, request: BulkRequest,
                          caller: str) -> BulkSend:
    raise_problem(check_bulk(request.recipients, request.subject, request.html, request.text, request.from_address))
    recipients = request.unique_recipients()
    call = None
    if request.idempotency_key is not None:
        idempotency.check_key(request.idempotency_key)
        payload = {"recipients": recipients, "subject": request.subject, "html": request.html, "text": request.text,
                   "from": request.from_address, "user": str(user_id)}
        call = idempotency.IdempotentCall(sub_account_id, caller, request.idempotency_key, "send:bulk",
                                          idempotency.fingerprint(payload))

    async def replay(bulk_send_id: uuid.UUID) -> BulkSend:
        async with rt.sessions() as session:
            found = await repo.bulk_send(session, sub_account_id, bulk_send_id)
        assert found is not None
        return found

    async def perform() -> BulkSend:
        bulk, events = await _queue(rt, sub_account_id, user_id, recipients, request, call)
        await enqueue_after_commit(rt.queue, "drain_bulk_send", str(bulk.id), job_id=f"bulk:{bulk.id}:start",
                                   safety_net="the periodic requeue_due_outbox job")
        await rt.events.publish_all(events)
        await publish_progress(rt, bulk.sub_account_id, bulk.id)
        return bulk

    return await idempotency.run_once(rt, call, perform, replay)


async def _queue(rt: Runtime, sub_account_id: uuid.UUID, user_id: uuid.UUID, recipients: list[str],
                 request: BulkRequest, call: idempotency.IdempotentCall | None) -> tuple[BulkSend, list[DomainEvent]]:
    async with rt.sessions.begin() as session:
        bulk_id = new_id()
        if call is not None:
            await idempotency.remember(session, call, bulk_id)
        sender = await resolve_sender(session, sub_account_id, user_id, EmailKind.BULK, request.from_address)
        sender.require_available()
        contacts = await mailbox_sync.contacts_by_emails(session, sub_account_id, recipients)
        missing = missing_contacts(recipients, set(contacts))
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise ServiceError("NOT_A_CONTACT", f"not a contact of this sub-account: {shown}", "recipients")
        assert sender.from_email is not None
        bulk = BulkSend(id=bulk_id, sub_account_id=sub_account_id, user_id=user_id, route=sender.decision.route.value,
                        route_reason=sender.decision.reason.value, from_email=sender.from_email,
                        subject=request.subject, status=BulkSendStatus.QUEUED, total=len(recipients))
        session.add(bulk)
        await session.flush()
        threads, messages, items, events = [], [], [], []
        sub = str(sub_account_id)
        for address in recipients:
            contact = contacts[address.lower()]
            thread = Thread(id=new_id(), sub_account_id=sub_account_id, user_id=user_id, contact_id=contact.id,
                            connection_id=sender.connection_id, subject=request.subject)
            message = new_message(sender, EmailKind.BULK, thread=thread, message_id=new_id(),
                                  subject=request.subject, html=request.html, text=request.text, to=[address],
                                  bulk_send_id=bulk_id)
            thread.last_message_at, thread.snippet, thread.message_count = message.sent_at, message.snippet, 1
            threads.append(_row(thread))
            messages.append(_row(message))
            items.append({"id": new_id(), "sub_account_id": sub_account_id, "message_id": message.id,
                          "connection_id": sender.connection_id, "route": sender.decision.route.value,
                          "bulk_send_id": bulk_id})
            events += [DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=sub, thread_id=str(thread.id)),
                       DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id=sub, thread_id=str(thread.id),
                                   message_id=str(message.id))]
        # Core executemany: a thousand recipients are three statements, not 3,000 ORM flushes.
        await session.execute(insert(Thread), threads)
        await session.execute(insert(Message), messages)
        await session.execute(insert(OutboxItem), items)
        await record_events(session, events)
        return bulk, events


def _row(obj: object) -> dict[str, object]:
    table = obj.__table__  # type: ignore[attr-defined]
    return {c.key: getattr(obj, c.key) for c in table.columns if getattr(obj, c.key) is not None}


async def publish_progress(rt: Runtime, sub_account_id: uuid.UUID, bulk_send_id: uuid.UUID) -> None:
    await rt.events.publish(DomainEvent(type=EventType.BULK_SEND_PROGRESS, sub_account_id=str(sub_account_id),
                                        bulk_send_id=str(bulk_send_id)))


class DrainDeferred(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"continue in {retry_after}s")
        self.retry_after = retry_after


def pace_seconds(route: str, mailbox_provider: str | None, relay_rate: int | None) -> float:
    """Seconds between two deliveries of a bulk send on ``route``."""
    if route == SenderRoute.SUB_ACCOUNT.value:
        return 60.0 / (relay_rate or 600)
    return 60.0 / MAILBOX_SEND_RATE_PER_MINUTE.get(mailbox_provider or "", 30)


async def drain(rt: Runtime, bulk_send_id: uuid.UUID, budget_seconds: float = DRAIN_BUDGET_SECONDS) -> None:
    """Deliver a bulk send's due deliveries, paced, for up to ``budget_seconds``. Raises
    ``DrainDeferred`` when the rest must wait (a retry's backoff, or a lapsed claim)."""
    started = time.monotonic()
    async with rt.sessions.begin() as session:
        bulk = await session.get(BulkSend, bulk_send_id)
        if bulk is None or bulk.status == BulkSendStatus.COMPLETED:
            return
        relay = await repo.relay_of(session, bulk.sub_account_id)
        conn = None
        if bulk.route == SenderRoute.MAILBOX.value and bulk.user_id is not None:
            conn = await mailbox_sync.current_connection(session, bulk.sub_account_id, bulk.user_id)
        pace = pace_seconds(bulk.route, conn.provider if conn else None, relay.max_per_minute if relay else None)
        lease = outbox.attempt_lease(rt, bulk.route) + timedelta(seconds=pace + 5)
        if not await repo.take_drain_lease(session, bulk_send_id, utcnow(), lease):
            return  # another drain is running it
        sub_account_id = bulk.sub_account_id
        route = bulk.route
    while time.monotonic() - started < budget_seconds:
        async with rt.sessions.begin() as session:
            now = utcnow()
            outbox_id = await repo.claim_next_bulk_delivery(session, bulk_send_id, now,
                                                            now + outbox.attempt_lease(rt, route))
            await repo.renew_drain_lease(session, bulk_send_id, now + lease)
        if outbox_id is None:
            break
        try:
            await outbox.deliver_claimed(rt, outbox_id)
        except outbox.DeliveryDeferred:
            pass  # rescheduled on its row; picked up when due
        await _after_delivery(rt, sub_account_id, bulk_send_id)
        # From one delivery's end to the next one's start: the relay sees at most its rate.
        await asyncio.sleep(pace)
    else:
        await _release_drain_lease(rt, bulk_send_id)
        await enqueue_after_commit(rt.queue, "drain_bulk_send", str(bulk_send_id),
                                   job_id=f"bulk:{bulk_send_id}:{uuid.uuid4().hex[:8]}",
                                   safety_net="the periodic requeue_due_outbox job")
        return
    await _release_drain_lease(rt, bulk_send_id)
    async with rt.sessions.begin() as session:
        next_at = await repo.next_bulk_attempt_at(session, bulk_send_id)
        await repo.recount_bulk_send(session, bulk_send_id, utcnow())
    await publish_progress(rt, sub_account_id, bulk_send_id)
    if next_at is not None:
        raise DrainDeferred(max(0.5, (next_at - utcnow()).total_seconds()))


async def _after_delivery(rt: Runtime, sub_account_id: uuid.UUID, bulk_send_id: uuid.UUID) -> None:
    async with rt.sessions.begin() as session:
        await repo.recount_bulk_send(session, bulk_send_id, utcnow())
    await publish_progress(rt, sub_account_id, bulk_send_id)


async def _release_drain_lease(rt: Runtime, bulk_send_id: uuid.UUID) -> None:
    async with rt.sessions.begin() as session:
        await repo.renew_drain_lease(session, bulk_send_id, None)


async def stranded_bulk_sends(rt: Runtime) -> list[uuid.UUID]:
    """Bulk sends with due deliveries and no live drain (lost job, dead worker)."""
    async with rt.sessions() as session:
        return await repo.stranded_bulk_sends(session, utcnow())
