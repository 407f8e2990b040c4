"""CRM sends (individual and workflow email): validate, decide the sender, then commit
thread + message + outbox row in one transaction.

No provider call happens here: ``OutboxService.deliver`` (a job) sends after commit, so a
crash can never leave a sent email without its CRM record. Which service the email
leaves through (the user's mailbox, or the sub-account's relay) is decided by
``services.sender`` and stored on the message with its reason. Bulk email is
``services.bulk_send``.

Queueing is load (``SendFacts``, read at the start of the write transaction, right after
the idempotency key is recorded) → decide (``decide_send``, pure: the errors, the
subject, the reply headers, the thread) → write.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.base import new_id
from db.models import Attachment, Contact, Message, OutboxItem, Thread
from db.repositories import contacts as contacts_repo
from db.repositories import messages as messages_repo
from db.repositories import outbox as outbox_repo
from db.repositories import tenancy
from db.repositories import threads as threads_repo
from sync_engine.content import sanitize_html, snippet
from sync_engine.domain import OutgoingAttachment
from sync_engine.events import DomainEvent, record_events
from sync_engine.job_queue import Jobs
from sync_engine.rules.outbound import Draft, Problem, all_recipients, check_draft, missing_contacts
from sync_engine.rules.threading import references_for_reply, reply_subject
from sync_engine.services import idempotency
from sync_engine.services.collaborators import Clock, EventPublisher, SessionFactory
from sync_engine.services.errors import NotFound, ServiceError
from sync_engine.services.idempotency import IdempotencyService, IdempotentCall
from sync_engine.services.sender import ResolvedSender, SenderService
from vocabulary import EmailKind, EventType, MessageDirection, MessageOrigin, MessageStatus


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


@dataclass(frozen=True)
class SendFacts:
    """What queueing a send decides on, read in its transaction."""

    thread: Thread | None  # the thread replied to, when the request names one of this sub-account
    sender: ResolvedSender
    contacts: Mapping[str, Contact]  # the recipients that are contacts, by normalized address
    # The thread's newest message with a Message-ID (what a reply refers to).
    parent_message_id: str | None = None
    parent_references: Sequence[str] = ()


@dataclass(frozen=True)
class SendPlan:
    subject: str
    in_reply_to: str | None
    references: list[str]
    # Set when the send starts a thread: its contact (the first To recipient).
    new_thread_contact_id: uuid.UUID | None


def decide_send(request: SendRequest, facts: SendFacts) -> SendPlan:
    """The checks that need the database's facts, and what the message will be. Pure;
    raises ``ServiceError`` (the first problem, in the order a client fixes them)."""
    if request.thread_id is not None and facts.thread is None:
        raise NotFound("thread", "threadId")
    facts.sender.require_available()
    for name in ("to", "cc", "bcc"):
        missing = missing_contacts(getattr(request, name), set(facts.contacts))
        if missing:
            raise ServiceError("NOT_A_CONTACT", f"not a contact of this sub-account: {', '.join(missing)}", name)
    if facts.thread is not None:
        references = (references_for_reply(facts.parent_message_id, list(facts.parent_references))
                      if facts.parent_message_id is not None else [])
        return SendPlan(subject=request.subject.strip() or reply_subject(facts.thread.subject),
                        in_reply_to=facts.parent_message_id, references=references, new_thread_contact_id=None)
    first = facts.contacts[request.to[0].strip().lower()]
    return SendPlan(subject=request.subject, in_reply_to=None, references=[], new_thread_contact_id=first.id)


def new_message(sender: ResolvedSender, kind: EmailKind, *, thread: Thread, message_id: uuid.UUID, subject: str,
                html: str | None, text: str | None, to: Sequence[str], now: datetime, cc: Sequence[str] = (),
                bcc: Sequence[str] = (), in_reply_to: str | None = None, references: Sequence[str] = (),
                bulk_send_id: uuid.UUID | None = None) -> Message:
    """A queued CRM message with its route and reason (not yet added to a session)."""
    assert sender.from_email is not None
    domain = sender.from_email.rsplit("@", 1)[-1]
    clean_html = sanitize_html(html)
    return Message(
        id=message_id, sub_account_id=thread.sub_account_id, thread_id=thread.id, connection_id=sender.connection_id,
        direction=MessageDirection.OUTBOUND, origin=MessageOrigin.CRM, status=MessageStatus.QUEUED,
        message_id_header=f"<{uuid.uuid4().hex}@{domain}>",
        in_reply_to=in_reply_to, references=" ".join(references) or None, subject=subject,
        from_email=sender.from_email, from_name=sender.from_name,
        to_addresses=[{"email": a, "name": None} for a in to],
        cc_addresses=[{"email": a, "name": None} for a in cc],
        bcc_addresses=[{"email": a, "name": None} for a in bcc],
        html=clean_html, text=text, snippet=snippet(text, clean_html), is_read=True,
        # Whole seconds, as providers report sent times: a reply stamped in the same second
        # must not sort before this message; ties fall back to creation order (new_id).
        sent_at=now.replace(microsecond=0),
        route=sender.decision.route, route_reason=sender.decision.reason, kind=kind,
        bulk_send_id=bulk_send_id,
    )


@dataclass(frozen=True)
class SendService:
    sessions: SessionFactory
    events: EventPublisher
    jobs: Jobs
    clock: Clock
    senders: SenderService
    idempotency: IdempotencyService

    async def send_email(self, *, sub_account_id: uuid.UUID, user_id: uuid.UUID, request: SendRequest,
                         caller: str | None = None) -> Message:
        """An individual email from a user: their mailbox, else the sub-account provider."""
        return await self._send_one(EmailKind.INDIVIDUAL, sub_account_id, user_id, request,
                                    caller or f"user:{user_id}")

    async def send_workflow_email(self, *, sub_account_id: uuid.UUID, user_id: uuid.UUID | None,
                                  request: SendRequest, caller: str) -> Message:
        """A workflow/automation email: always the sub-account provider, never synced.
        ``user_id``: the user the workflow runs for (the thread's owner), of this sub-account."""
        if user_id is not None:
            async with self.sessions() as session:
                if not await tenancy.is_member(session, sub_account_id, user_id):
                    raise NotFound("user", "userId")
        return await self._send_one(EmailKind.WORKFLOW, sub_account_id, user_id, request, caller)

    async def _send_one(self, kind: EmailKind, sub_account_id: uuid.UUID, user_id: uuid.UUID | None,
                        request: SendRequest, caller: str) -> Message:
        raise_problem(check_draft(request.draft()))
        call = None
        if request.idempotency_key is not None:
            idempotency.check_key(request.idempotency_key)
            call = IdempotentCall(sub_account_id, caller, request.idempotency_key, f"send:{kind.value}",
                                  request.fingerprint(kind, user_id))

        async def replay(message_id: uuid.UUID) -> Message:
            async with self.sessions() as session:
                message = await threads_repo.message_in_sub_account(session, sub_account_id, message_id)
            assert message is not None
            return message

        async def perform() -> Message:
            message, outbox_id, events = await self._queue(kind, sub_account_id, user_id, request, call)
            # The send is committed: failing now would invite the client to send it again.
            await self.jobs.deliver_outbox(outbox_id, after_commit=True)
            await self.events.publish_all(events)
            return message

        return await self.idempotency.run_once(call, perform, replay)

    async def _queue(self, kind: EmailKind, sub_account_id: uuid.UUID, user_id: uuid.UUID | None,
                     request: SendRequest, call: IdempotentCall | None
                     ) -> tuple[Message, uuid.UUID, list[DomainEvent]]:
        async with self.sessions.begin() as session:
            message_id = new_id()
            if call is not None:
                await self.idempotency.remember(session, call, message_id)
            facts = await self._load(session, kind, sub_account_id, user_id, request)
            plan = decide_send(request, facts)
            return await self._write(session, kind, sub_account_id, user_id, request, facts, plan, message_id)

    async def _load(self, session: AsyncSession, kind: EmailKind, sub_account_id: uuid.UUID,
                    user_id: uuid.UUID | None, request: SendRequest) -> SendFacts:
        thread = None
        if request.thread_id is not None:
            thread = await messages_repo.thread_in_sub_account(session, sub_account_id, request.thread_id)
        sender = await self.senders.resolve_sender(session, sub_account_id, user_id, kind)
        contacts = await contacts_repo.contacts_by_emails(session, sub_account_id, all_recipients(request.draft()))
        parent = await threads_repo.reply_parent(session, sub_account_id, thread.id) if thread is not None else None
        if parent is None:
            return SendFacts(thread, sender, contacts)
        return SendFacts(thread, sender, contacts, parent.message_id_header, (parent.references or "").split())

    async def _write(self, session: AsyncSession, kind: EmailKind, sub_account_id: uuid.UUID,
                     user_id: uuid.UUID | None, request: SendRequest, facts: SendFacts, plan: SendPlan,
                     message_id: uuid.UUID) -> tuple[Message, uuid.UUID, list[DomainEvent]]:
        sender, thread = facts.sender, facts.thread
        if thread is None:
            thread = Thread(sub_account_id=sub_account_id, user_id=user_id, contact_id=plan.new_thread_contact_id,
                            connection_id=sender.connection_id, subject=plan.subject)
            await threads_repo.add_thread(session, thread)
        message = new_message(sender, kind, thread=thread, message_id=message_id, subject=plan.subject,
                              html=request.html, text=request.text, to=request.to, cc=request.cc, bcc=request.bcc,
                              in_reply_to=plan.in_reply_to, references=plan.references, now=self.clock())
        attachments = [Attachment(message_id=message.id, sub_account_id=sub_account_id, filename=att.filename,
                                  content_type=att.content_type, size=len(att.content), content=att.content)
                       for att in request.attachments]
        await threads_repo.add_message(session, message, attachments)
        outbox = OutboxItem(sub_account_id=sub_account_id, message_id=message.id, connection_id=sender.connection_id,
                            route=sender.decision.route)
        await outbox_repo.add_item(session, outbox)
        await messages_repo.add_to_thread_counters(session, thread.id, sent_at=message.sent_at, unread=False,
                                                   snippet=message.snippet)
        sub, thread_id = str(sub_account_id), str(thread.id)
        events = ([DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=sub, thread_id=thread_id)]
                  if facts.thread is None else [])
        events.append(DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id=sub, thread_id=thread_id,
                                  message_id=str(message.id)))
        await record_events(session, events)
        return message, outbox.id, events
