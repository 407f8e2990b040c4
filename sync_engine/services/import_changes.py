"""Apply one page of mailbox changes, with its cursor, in one transaction.

Phase 1, only for pages with attachments not yet downloaded: a dry run of phase 2
in a transaction that is rolled back, which tells exactly which messages will sync
and so which attachments to download. Downloads then happen with no transaction
open (no provider call ever runs while the database write lock is held), and
nothing is downloaded for mail that is not going to sync.
Phase 2 (one transaction): dedupe, select (``rules.selection``), thread
(``rules.threading``), insert, and store the page's cursor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Attachment, Contact, EmailConnection, Message, SyncSkip, Thread
from db.repositories import mailbox_sync as repo
from sync_engine.content import sanitize_html, snippet
from sync_engine.domain import ChangeKind, Folder, MailChange, MailMessage, SyncPage
from sync_engine.events import DomainEvent, EventType
from sync_engine.providers.base import MailboxClient
from sync_engine.rules.addresses import participants
from sync_engine.rules.attachments import check_content, check_declared
from sync_engine.rules.selection import SelectionFacts, Verdict, select
from sync_engine.rules.threading import match_thread, normalize_message_id, referenced_ids
from sync_engine.runtime import Runtime

CONFIDENTIAL = "confidential"


class LeaseLost(Exception):
    """Another pass took over the mailbox (ours ran past its lease) or it was disconnected."""


@dataclass(slots=True)
class _PassFacts:
    owner: str
    user_addresses: set[str]
    bcc_address: str
    labs: bool


@dataclass(slots=True)
class _Outcome:
    events: list[DomainEvent] = field(default_factory=list)
    imported: int = 0
    confidential: int = 0


class PageImporter:
    def __init__(self, rt: Runtime, conn: EmailConnection, client: MailboxClient) -> None:
        self._rt = rt
        self._conn = conn
        self._client = client
        self._facts: _PassFacts | None = None

    async def _pass_facts(self, session: AsyncSession) -> _PassFacts:
        if self._facts is None:
            account = await repo.sub_account(session, self._conn.sub_account_id)
            assert account is not None
            self._facts = _PassFacts(
                owner=self._conn.address.lower(),
                user_addresses=await repo.user_addresses(session, self._conn.sub_account_id),
                bcc_address=account.bcc_sync_address.lower(),
                labs=account.labs_two_way_sync,
            )
        return self._facts

    async def apply(self, page: SyncPage, lease_owner: str, lease_until: datetime) -> list[DomainEvent]:
        contents = await self._download_needed_attachments(page.changes)
        outcome = _Outcome()
        async with self._rt.sessions.begin() as session:
            for change in page.changes:
                await self._apply_change(session, change, contents, outcome)
            stored = await session.execute(
                update(EmailConnection)
                .where(
                    EmailConnection.id == self._conn.id,
                    # Only the lease holder of a current mailbox may move the cursor.
                    EmailConnection.sync_lease_owner == lease_owner,
                    EmailConnection.is_current.is_(True),
                )
                .values(
                    cursor=page.cursor,
                    messages_synced=EmailConnection.messages_synced + outcome.imported,
                    confidential_skipped=EmailConnection.confidential_skipped + outcome.confidential,
                    sync_lease_until=lease_until,
                )
            )
            if stored.rowcount != 1:
                raise LeaseLost(self._conn.id)  # rolls the whole page back
        return outcome.events

    # ---- phase 1

    async def _download_needed_attachments(self, changes: list[MailChange]) -> dict[tuple[str, str], bytes]:
        if not any(c.message is not None and any(a.content is None for a in c.message.attachments) for c in changes):
            return {}
        needed: list[tuple[str, str]] = []
        async with self._rt.sessions() as session:
            transaction = await session.begin()
            try:
                for change in changes:
                    await self._apply_change(session, change, {}, _Outcome(), needed=needed)
            finally:
                await transaction.rollback()
        return {key: await self._client.fetch_attachment(*key) for key in dict.fromkeys(needed)}

    # ---- phase 2

    async def _apply_change(
        self,
        session: AsyncSession,
        change: MailChange,
        contents: dict[tuple[str, str], bytes],
        out: _Outcome,
        needed: list[tuple[str, str]] | None = None,
    ) -> None:
        """``needed`` set: a dry run that lists the attachments a synced message lacks."""
        existing = await repo.message_by_provider_id(session, self._conn.id, change.provider_id)
        if change.kind is ChangeKind.REMOVED:
            if existing is not None and not existing.deleted_in_mailbox:
                existing.deleted_in_mailbox = True
                out.events.append(self._event(EventType.MESSAGE_UPDATED, existing))
            return
        if change.kind is ChangeKind.READ_STATE:
            if existing is not None and change.is_read is not None:
                await self._set_read(session, existing, change.is_read, out)
            return
        msg = change.message
        assert msg is not None
        if existing is not None:
            await self._set_read(session, existing, msg.is_read, out)
            return
        if msg.is_draft or await repo.skip_exists(session, self._conn.id, msg.provider_id):
            return
        header = normalize_message_id(msg.message_id)
        if header and (ours := await repo.message_by_header(session, self._conn.id, header)) is not None:
            await self._adopt_sent_copy(session, ours, msg)
            return
        await self._import_new(session, msg, header, contents, out, needed)

    async def _import_new(
        self,
        session: AsyncSession,
        msg: MailMessage,
        header: str | None,
        contents: dict[tuple[str, str], bytes],
        out: _Outcome,
        needed: list[tuple[str, str]] | None,
    ) -> None:
        facts = await self._pass_facts(session)
        sub_id = self._conn.sub_account_id
        thread = await self._find_thread(session, msg)
        contacts = await repo.contacts_by_emails(session, sub_id, [a.normalized for a in participants(msg)])
        selection = select(
            msg,
            SelectionFacts(
                owner_address=facts.owner,
                user_addresses=facts.user_addresses,
                contact_addresses=contacts.keys(),
                bcc_sync_address=facts.bcc_address,
                labs_two_way_sync=facts.labs,
                in_existing_thread=thread is not None,
            ),
        )
        if selection.verdict is Verdict.CONFIDENTIAL:
            # Nothing of it is kept but an opaque id, so the count stays exact across replays.
            session.add(SyncSkip(sub_account_id=sub_id, connection_id=self._conn.id, user_id=self._conn.user_id,
                                 provider_message_id=msg.provider_id, reason=CONFIDENTIAL))
            out.confidential += 1
            return
        if selection.verdict is not Verdict.SYNC:
            return
        blobs, problem = _attachment_bytes(msg, contents, needed)
        if problem is not None:
            session.add(SyncSkip(sub_account_id=sub_id, connection_id=self._conn.id, user_id=self._conn.user_id,
                                 provider_message_id=msg.provider_id, reason=problem[0], detail=problem[1],
                                 subject=msg.subject, from_email=msg.sender.email if msg.sender else None,
                                 sent_at=msg.sent_at))
            return
        for address in selection.new_contacts:
            contact = Contact(sub_account_id=sub_id, email=address, email_normalized=address, source="bcc")
            session.add(contact)
            contacts[address] = contact
        await session.flush()
        contact = contacts.get(selection.contact_address or "")
        if thread is None:
            thread = Thread(sub_account_id=sub_id, user_id=self._conn.user_id, contact_id=contact.id if contact else None,
                            connection_id=self._conn.id, provider_thread_key=msg.thread_key, subject=msg.subject)
            session.add(thread)
            await session.flush()
            out.events.append(DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=str(sub_id), thread_id=str(thread.id)))
        elif thread.provider_thread_key is None and thread.connection_id == self._conn.id and msg.thread_key:
            thread.provider_thread_key = msg.thread_key
        row = _message_row(msg, header, thread, self._conn)
        session.add(row)
        await session.flush()
        for att, data in blobs:
            session.add(Attachment(message_id=row.id, sub_account_id=sub_id, filename=att.filename,
                                   content_type=att.content_type, size=len(data),
                                   provider_attachment_id=att.provider_attachment_id, content=data))
        await repo.add_to_thread_counters(session, thread.id, sent_at=row.sent_at,
                                          unread=row.direction == "inbound" and not row.is_read, snippet=row.snippet)
        out.imported += 1
        out.events.append(self._event(EventType.MESSAGE_ADDED, row))

    async def _find_thread(self, session: AsyncSession, msg: MailMessage) -> Thread | None:
        by_key: dict[str, Thread] = {}
        if msg.thread_key and (t := await repo.thread_by_key(session, self._conn.id, msg.thread_key)) is not None:
            by_key[msg.thread_key] = t
        by_mid = await repo.threads_by_message_ids(session, self._conn.sub_account_id, self._conn.id, referenced_ids(msg))
        return match_thread(msg, by_key, by_mid)

    async def _adopt_sent_copy(self, session: AsyncSession, ours: Message, msg: MailMessage) -> None:
        """The Sent-folder copy of a message the CRM sent: link it, never insert it again."""
        if ours.provider_message_id is None:
            ours.provider_message_id = msg.provider_id
        if ours.status in ("queued", "failed"):
            # It is in the Sent folder, so it went out (e.g. the send's response was lost).
            ours.status, ours.error = "sent", None
        thread = await session.get(Thread, ours.thread_id)
        if thread is not None and thread.provider_thread_key is None and msg.thread_key:
            thread.provider_thread_key = msg.thread_key

    async def _set_read(self, session: AsyncSession, row: Message, is_read: bool, out: _Outcome) -> None:
        if row.is_read == is_read:
            return
        row.is_read = is_read
        await session.flush()
        await repo.recount_unread(session, row.thread_id)
        out.events.append(self._event(EventType.MESSAGE_UPDATED, row))

    def _event(self, kind: str, row: Message) -> DomainEvent:
        return DomainEvent(type=kind, sub_account_id=str(row.sub_account_id), thread_id=str(row.thread_id), message_id=str(row.id))


def _attachment_bytes(  # type: ignore[no-untyped-def]
    msg: MailMessage, contents: dict[tuple[str, str], bytes], needed: list[tuple[str, str]] | None
):
    blobs = []
    for att in msg.attachments:
        declared = check_declared(att.filename, att.size)
        if not declared.ok:
            return [], (declared.problem.value, declared.detail)  # type: ignore[union-attr]
        key = (msg.provider_id, att.provider_attachment_id or "")
        data = att.content if att.content is not None else contents.get(key)
        if data is None and needed is not None:
            needed.append(key)  # dry run: carry on as if it were here, so later changes see this message
            blobs.append((att, b""))
            continue
        if data is None:
            return [], ("attachment_unavailable", f"{att.filename}: could not be downloaded")
        verdict = check_content(att.filename, data)
        if not verdict.ok:
            return [], (verdict.problem.value, verdict.detail)  # type: ignore[union-attr]
        blobs.append((att, data))
    return blobs, None


def _message_row(msg: MailMessage, header: str | None, thread: Thread, conn: EmailConnection) -> Message:
    inbound = msg.folder is Folder.INBOX
    html = sanitize_html(msg.html)
    return Message(
        id=uuid.uuid4(),
        sub_account_id=conn.sub_account_id,
        thread_id=thread.id,
        connection_id=conn.id,
        direction="inbound" if inbound else "outbound",
        origin="mailbox",
        status="synced",
        provider_message_id=msg.provider_id,
        message_id_header=header,
        in_reply_to=normalize_message_id(msg.in_reply_to),
        references=" ".join(msg.references) or None,
        subject=msg.subject,
        from_email=msg.sender.email if msg.sender else None,
        from_name=msg.sender.name if msg.sender else None,
        to_addresses=[{"email": a.email, "name": a.name} for a in msg.to],
        cc_addresses=[{"email": a.email, "name": a.name} for a in msg.cc],
        bcc_addresses=[{"email": a.email, "name": a.name} for a in msg.bcc],
        html=html,
        text=msg.text,
        snippet=snippet(msg.text, html),
        is_read=msg.is_read if inbound else True,
        sent_at=msg.sent_at,
    )
