"""CRM sends: validate, then commit thread + message + outbox row in one transaction.

No provider call happens here: ``outbox.deliver`` (a job) sends after commit,
so a crash can never leave a sent email without its CRM record.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, update

from db.models import Attachment, ConnectionStatus, Message, OutboxItem, Thread
from db.repositories import mailbox_sync as repo
from sync_engine.content import sanitize_html, snippet
from sync_engine.domain import OutgoingAttachment
from sync_engine.events import DomainEvent, EventType
from sync_engine.rules.addresses import has_header_injection, is_valid_email, normalize_email
from sync_engine.rules.attachments import check_content
from sync_engine.rules.sender import EmailKind, SenderRoute, route_for
from sync_engine.rules.threading import references_for_reply, reply_subject
from sync_engine.queue import enqueue_after_commit
from sync_engine.runtime import Runtime
from sync_engine.services.errors import NotFound, ServiceError
from db.base import utcnow

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


def _validate(request: SendRequest) -> None:
    if has_header_injection(request.subject):
        raise ServiceError("INVALID_HEADER", "the subject must not contain line breaks", "subject")
    if not request.to:
        raise ServiceError("NO_RECIPIENT", "at least one recipient is required", "to")
    for name in ("to", "cc", "bcc"):
        for address in getattr(request, name):
            if not is_valid_email(address):
                raise ServiceError("INVALID_EMAIL", f"not a valid email address: {address!r}", name)
    if not (request.html or request.text):
        raise ServiceError("EMPTY_BODY", "a text or HTML body is required", "text")
    for att in request.attachments:
        if has_header_injection(att.filename, att.content_type):
            raise ServiceError("INVALID_ATTACHMENT", "attachment names must not contain line breaks", "attachments")
        verdict = check_content(att.filename, att.content)
        if not verdict.ok:
            raise ServiceError(verdict.problem.value.upper(), verdict.detail, "attachments")  # type: ignore[union-attr]


async def send_email(rt: Runtime, *, sub_account_id: uuid.UUID, user_id: uuid.UUID, request: SendRequest) -> Message:
    _validate(request)
    async with rt.sessions.begin() as session:
        thread: Thread | None = None
        if request.thread_id is not None:
            thread = await session.scalar(
                select(Thread).where(Thread.id == request.thread_id, Thread.sub_account_id == sub_account_id)
            )
            if thread is None:
                raise NotFound("thread", "threadId")
        conn = await repo.current_connection(session, sub_account_id, user_id)
        usable = conn if conn is not None and conn.status in ConnectionStatus.LIVE else None
        if route_for(EmailKind.INDIVIDUAL, usable.address if usable else None) is not SenderRoute.MAILBOX:
            raise ServiceError("NO_SENDER", "no connected mailbox can send this email; connect a mailbox first")
        assert usable is not None
        contacts = await repo.contacts_by_emails(session, sub_account_id, request.to)
        missing = [a for a in request.to if normalize_email(a) not in contacts]
        if missing:
            raise ServiceError("NOT_A_CONTACT", f"not a contact of this sub-account: {', '.join(missing)}", "to")

        in_reply_to: str | None = None
        references: list[str] = []
        if thread is not None:
            parent = await session.scalar(
                select(Message)
                .where(Message.thread_id == thread.id, Message.message_id_header.is_not(None))
                .order_by(Message.sent_at.desc().nulls_last(), Message.created_at.desc())
                .limit(1)
            )
            if parent is not None:
                in_reply_to = parent.message_id_header
                references = references_for_reply(parent.message_id_header, (parent.references or "").split())
            subject = request.subject.strip() or reply_subject(thread.subject)
        else:
            first = contacts[normalize_email(request.to[0])]
            thread = Thread(sub_account_id=sub_account_id, user_id=user_id, contact_id=first.id,
                            connection_id=usable.id, subject=request.subject)
            session.add(thread)
            await session.flush()
            subject = request.subject

        html = sanitize_html(request.html)
        domain = usable.address.rsplit("@", 1)[-1]
        # Whole seconds, as providers report sent times: a reply stamped in the same second
        # must not sort before this message; ties fall back to creation order (new_id).
        now = utcnow().replace(microsecond=0)
        message = Message(
            sub_account_id=sub_account_id, thread_id=thread.id, connection_id=usable.id, direction="outbound",
            origin="crm", status="queued", message_id_header=f"<{uuid.uuid4().hex}@{domain}>",
            in_reply_to=in_reply_to, references=" ".join(references) or None, subject=subject,
            from_email=usable.address, from_name=usable.display_name,
            to_addresses=[{"email": a, "name": None} for a in request.to],
            cc_addresses=[{"email": a, "name": None} for a in request.cc],
            bcc_addresses=[{"email": a, "name": None} for a in request.bcc],
            html=html, text=request.text, snippet=snippet(request.text, html), is_read=True, sent_at=now,
        )
        session.add(message)
        await session.flush()
        for att in request.attachments:
            session.add(Attachment(message_id=message.id, sub_account_id=sub_account_id, filename=att.filename,
                                   content_type=att.content_type, size=len(att.content), content=att.content))
        outbox = OutboxItem(sub_account_id=sub_account_id, message_id=message.id, connection_id=usable.id)
        session.add(outbox)
        await repo.add_to_thread_counters(session, thread.id, sent_at=now, unread=False, snippet=message.snippet)
        await session.flush()
        outbox_id = outbox.id
    # The send is committed: failing now would invite the client to send it again.
    await enqueue_after_commit(rt.queue, "deliver_outbox", str(outbox_id), job_id=f"outbox:{outbox_id}",
                               safety_net="the periodic requeue_due_outbox job")
    if request.thread_id is None:
        await rt.events.publish(DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=str(sub_account_id), thread_id=str(thread.id)))
    await rt.events.publish(DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id=str(sub_account_id),
                                        thread_id=str(thread.id), message_id=str(message.id)))
    return message


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
    by_connection: dict[uuid.UUID, list[str]] = {}
    for m in writeback:
        by_connection.setdefault(m.connection_id, []).append(m.provider_message_id)  # type: ignore[arg-type]
    for connection_id, ids in by_connection.items():
        await enqueue_after_commit(rt.queue, "write_back_read_state", str(connection_id), ids, is_read,
                                   safety_net="the periodic requeue_read_writebacks job")
    for m in changed:
        await rt.events.publish(DomainEvent(type=EventType.MESSAGE_UPDATED, sub_account_id=str(sub_account_id),
                                            thread_id=str(thread_id), message_id=str(m.id)))
    return thread
