"""CRM sends (individual and workflow email): validate, decide the sender, then commit
thread + message + outbox row in one transaction.

No provider call happens here: ``outbox.deliver`` (a job) sends after commit, so a
crash can never leave a sent email without its CRM record. Which service the email
leaves through (the user's mailbox, or the sub-account's relay) is decided by
``services.sender`` and stored on the message with its reason. Bulk email is
``services.bulk_send``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import new_id, utcnow
from db.models import Attachment, Message, OutboxItem, Thread
from db.repositories import mailbox_sync as repo
from sync_engine.content import sanitize_html, snippet
from sync_engine.domain import OutgoingAttachment
from sync_engine.events import DomainEvent, EventType, record_events
from sync_engine.queue import enqueue_after_commit
from sync_engine.rules.outbound import Draft, Problem, all_recipients, check_draft, missing_contacts
from sync_engine.rules.sender import EmailKind
from sync_engine.rules.threading import references_for_reply, reply_subject
from sync_engine.runtime import Runtime
from sync_engine.services import idempotency
from sync_engine.services.errors import NotFound, ServiceError
from sync_engine.services.sender import ResolvedSender, resolve_sender

log = logging.getLogger(__name__)


@dataclass
class SendRequest:
    subject: str
    html: str | None
    text: str | None
    to: list[str]
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    thread_id: uuid.UUID | None = None
    attachments: list[OutgoingAttachment] = field(default_factory=list)
    idempotency_key: str | None = None

    def draft(self) -> Draft:
        return Draft(self.subject, self.html, self.text, self.to, self.cc, self.bcc, self.attachments)

    def fingerprint(self, kind: EmailKind, user_id: uuid.UUID | None) -> str:
        data = asdict(self)
        data.pop("idempotency_key")
        data["attachments"] = [(a.filename, a.content_type, idempotency.fingerprint(a.content.hex()))
                               for a in self.attachments]
        return idempotency.fingerprint({"kind": kind.value, "user": str(user_id), **data})


def raise_problem(problem: Problem | None) -> None:
    if problem is not None:
        raise ServiceError(problem.code, problem.message, problem.field)


async def send_email(rt: Runtime, *, sub_account_id: uuid.UUID, user_id: uuid.UUID, request: SendRequest,
                     caller: str | None = None) -> Message:
    """An individual email from a user: their mailbox, else the sub-account provider."""
    return await _send_one(rt, EmailKind.INDIVIDUAL, sub_account_id, user_id, request, caller or f"user:{user_id}")


async def send_workflow_email(rt: Runtime, *, sub_account_id: uuid.UUID, user_id: uuid.UUID | None,
                              request: SendRequest, caller: str) -> Message:
    """A workflow/automation email: always the sub-account provider, never synced.
    ``user_id``: the user the workflow runs for (the thread's owner), of this sub-account."""
    if user_id is not None:
        async with rt.sessions() as session:
            if not await repo.user_in_sub_account(session, sub_account_id, user_id):
                raise NotFound("user", "userId")
    return await _send_one(rt, EmailKind.WORKFLOW, sub_account_id, user_id, request, caller)


async def _send_one(rt: Runtime, kind: EmailKind, sub_account_id: uuid.UUID, user_id: uuid.UUID | None,
                    request: SendRequest, caller: str) -> Message:
    raise_problem(check_draft(request.draft()))
    call = None
    if request.idempotency_key is not None:
        idempotency.check_key(request.idempotency_key)
        call = idempotency.IdempotentCall(sub_account_id, caller, request.idempotency_key, f"send:{kind.value}",
                                          request.fingerprint(kind, user_id))

    async def replay(message_id: uuid.UUID) -> Message:
        async with rt.sessions() as session:
            message = await session.get(Message, message_id)
        assert message is not None
        return message

    async def perform() -> Message:
        message, outbox_id, events = await _queue(rt, kind, sub_account_id, user_id, request, call)
        await _announce(rt, outbox_id, events)
        return message

    return await idempotency.run_once(rt, call, perform, replay)


async def _queue(rt: Runtime, kind: EmailKind, sub_account_id: uuid.UUID, user_id: uuid.UUID | None,
                 request: SendRequest, call: idempotency.IdempotentCall | None
                 ) -> tuple[Message, uuid.UUID, list[DomainEvent]]:
    async with rt.sessions.begin() as session:
        message_id = new_id()
        if call is not None:
            await idempotency.remember(session, call, message_id)
        thread: Thread | None = None
        if request.thread_id is not None:
            thread = await session.scalar(
                select(Thread).where(Thread.id == request.thread_id, Thread.sub_account_id == sub_account_id)
            )
            if thread is None:
                raise NotFound("thread", "threadId")
        sender = await resolve_sender(session, sub_account_id, user_id, kind)
        sender.require_available()
        recipients = all_recipients(request.draft())
        contacts = await repo.contacts_by_emails(session, sub_account_id, recipients)
        for name in ("to", "cc", "bcc"):
            missing = missing_contacts(getattr(request, name), set(contacts))
            if missing:
                raise ServiceError("NOT_A_CONTACT", f"not a contact of this sub-account: {', '.join(missing)}", name)

        in_reply_to, references, subject = None, [], request.subject
        new_thread = thread is None
        if thread is not None:
            in_reply_to, references = await _reply_headers(session, thread.id)
            subject = request.subject.strip() or reply_subject(thread.subject)
        else:
            first = contacts[request.to[0].strip().lower()]
            thread = Thread(sub_account_id=sub_account_id, user_id=user_id, contact_id=first.id,
                            connection_id=sender.connection_id, subject=request.subject)
            session.add(thread)
            await session.flush()
        message = new_message(sender, kind, thread=thread, message_id=message_id, subject=subject,
                              html=request.html, text=request.text, to=request.to, cc=request.cc, bcc=request.bcc,
                              in_reply_to=in_reply_to, references=references)
        session.add(message)
        await session.flush()
        for att in request.attachments:
            session.add(Attachment(message_id=message.id, sub_account_id=sub_account_id, filename=att.filename,
                                   content_type=att.content_type, size=len(att.content), content=att.content))
        outbox = OutboxItem(sub_account_id=sub_account_id, message_id=message.id, connection_id=sender.connection_id,
                            route=sender.decision.route.value)
        session.add(outbox)
        await repo.add_to_thread_counters(session, thread.id, sent_at=message.sent_at, unread=False,
                                          snippet=message.snippet)
        await session.flush()
        sub, thread_id = str(sub_account_id), str(thread.id)
        events = [DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=sub, thread_id=thread_id)] if new_thread else []
        events.append(DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id=sub, thread_id=thread_id,
                                  message_id=str(message.id)))
        await record_events(session, events)
        return message, outbox.id, events


async def _reply_headers(session: AsyncSession, thread_id: uuid.UUID) -> tuple[str | None, list[str]]:
    parent = await session.scalar(
        select(Message)
        .where(Message.thread_id == thread_id, Message.message_id_header.is_not(None))
        .order_by(Message.sent_at.desc().nulls_last(), Message.created_at.desc())
        .limit(1)
    )
    if parent is None:
        return None, []
    return parent.message_id_header, references_for_reply(parent.message_id_header, (parent.references or "").split())


def new_message(sender: ResolvedSender, kind: EmailKind, *, thread: Thread, message_id: uuid.UUID, subject: str,
                html: str | None, text: str | None, to: Sequence[str], cc: Sequence[str] = (),
                bcc: Sequence[str] = (), in_reply_to: str | None = None, references: Sequence[str] = (),
                bulk_send_id: uuid.UUID | None = None) -> Message:
    """A queued CRM message with its route and reason (not yet added to a session)."""
    assert sender.from_email is not None
    domain = sender.from_email.rsplit("@", 1)[-1]
    clean_html = sanitize_html(html)
    # Whole seconds, as providers report sent times: a reply stamped in the same second
    # must not sort before this message; ties fall back to creation order (new_id).
    now = utcnow().replace(microsecond=0)
    return Message(
        id=message_id, sub_account_id=thread.sub_account_id, thread_id=thread.id, connection_id=sender.connection_id,
        direction="outbound", origin="crm", status="queued", message_id_header=f"<{uuid.uuid4().hex}@{domain}>",
        in_reply_to=in_reply_to, references=" ".join(references) or None, subject=subject,
        from_email=sender.from_email, from_name=sender.from_name,
        to_addresses=[{"email": a, "name": None} for a in to],
        cc_addresses=[{"email": a, "name": None} for a in cc],
        bcc_addresses=[{"email": a, "name": None} for a in bcc],
        html=clean_html, text=text, snippet=snippet(text, clean_html), is_read=True, sent_at=now,
        route=sender.decision.route.value, route_reason=sender.decision.reason.value, kind=kind.value,
        bulk_send_id=bulk_send_id,
    )


async def _announce(rt: Runtime, outbox_id: uuid.UUID, events: list[DomainEvent]) -> None:
    # The send is committed: failing now would invite the client to send it again.
    await enqueue_after_commit(rt.queue, "deliver_outbox", str(outbox_id), job_id=f"outbox:{outbox_id}",
                               safety_net="the periodic requeue_due_outbox job")
    await rt.events.publish_all(events)


async def mark_thread_read(rt: Runtime, *, sub_account_id: uuid.UUID, thread_id: uuid.UUID, is_read: bool) -> Thread:
    async with rt.sessions.begin() as session:
        thread = await session.scalar(select(Thread).where(Thread.id == thread_id, Thread.sub_account_id == sub_account_id))
        if thread is None:
            raise NotFound("thread", "threadId")
        changed = list(
            await session.scalars(
                select(Message).where(Message.thread_id == thread_id, Message.direction == "inbound",
                                      Message.is_read.is_not(is_read))
            )
        )
        await session.execute(
            update(Message).where(Message.thread_id == thread_id, Message.direction == "inbound").values(is_read=is_read)
        )
        # Write the flag back to the mailbox(es) the messages live in; until that is done
        # they are marked pending, so neither a sync pass nor a lost job undoes the change.
        writeback = [m for m in changed if m.connection_id and m.provider_message_id and not m.deleted_in_mailbox]
        await repo.mark_read_writeback_pending(session, sub_account_id, [m.id for m in writeback])
        await repo.recount_unread(session, thread_id)
        await session.refresh(thread)
        events = [DomainEvent(type=EventType.MESSAGE_UPDATED, sub_account_id=str(sub_account_id),
                              thread_id=str(thread_id), message_id=str(m.id)) for m in changed]
        await record_events(session, events)
    by_connection: dict[uuid.UUID, list[str]] = {}
    for m in writeback:
        by_connection.setdefault(m.connection_id, []).append(m.provider_message_id)  # type: ignore[arg-type]
    for connection_id, ids in by_connection.items():
        await enqueue_after_commit(rt.queue, "write_back_read_state", str(connection_id), ids, is_read,
                                   safety_net="the periodic requeue_read_writebacks job")
    await rt.events.publish_all(events)
    return thread
