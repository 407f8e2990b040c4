"""Decide a page of mailbox changes in memory, then write it with a few statements.

Why: deciding change by change against the database cost 8-10 round trips per message
(lookups, flushes, two counter UPDATEs), which made the import database-bound. Here
``load`` reads everything the page can need with one query per kind of lookup (known
provider ids, sync skips, the CRM's own sends by Message-ID, thread keys, threads of
referenced messages, contacts); ``apply`` then decides each change *in page order*
against that in-memory view and updates it as it goes, so a change sees every earlier
change of its page exactly as the database would have shown it: the second message of a
thread created on this page, a reply whose parent is on this page, a provider id seen
twice. ``store`` writes the outcome (bulk inserts, grouped updates, one counter update per
touched thread).

Dedupe: a provider message maps to one CRM message by its provider id (replays, read
changes). A Message-ID match alone never makes a message "already known" (DESIGN.md
section 6: resends, broken mailers and reused corpora share ids) with one exception: the
Sent-folder copy of a message the CRM itself sent through this mailbox, which is that
message (its row was committed before the provider call) and is adopted, not inserted.
Each Sent copy adopts the oldest CRM send with its Message-ID that no provider message of
the connection holds yet (a relay may give several sends one id). A copy with none left,
and the Inbox copy of a send addressed to the mailbox itself (From: the owner), are the
CRM's own message once more: recorded as a sync skip (``copy_of_crm_send``) rather than
imported as a duplicate, and never dropped unseen.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from db.base import new_id
from db.repositories import page_import as repo
from sync_engine.content import sanitize_html, snippet, storable
from sync_engine.domain import Address, AttachmentData, ChangeKind, Folder, MailChange, MailMessage
from sync_engine.events import DomainEvent
from sync_engine.rules.addresses import participants
from sync_engine.rules.attachments import check_content, check_declared
from sync_engine.rules.selection import SelectionFacts, Verdict, select
from sync_engine.rules.threading import (
    match_thread,
    normalize_message_id,
    referenced_ids,
)
from vocabulary import EventType

CONFIDENTIAL = "confidential"
NO_SENDER_DETAIL = "the message has no sender address (From), so it cannot be matched to a contact"
COPY_OF_CRM_SEND = "copy_of_crm_send"
COPY_OF_CRM_SEND_DETAIL = "a copy of an email sent from the CRM, which already shows that email"


class AttachmentNotDownloaded(Exception):
    """The write phase would sync a message whose attachment the dry run did not ask for:
    the data changed in between (e.g. its sender just became a contact). Not a reason to
    skip the message: the importer downloads what is now needed and decides again."""

    def __init__(self, key: tuple[str, str]) -> None:
        super().__init__(f"attachment {key[1]} of message {key[0]} was not downloaded")
        self.key = key


@dataclass(frozen=True, slots=True)
class Mailbox:
    """The connection being imported and the facts of its sub-account, read once per pass."""

    connection_id: uuid.UUID
    sub_account_id: uuid.UUID
    user_id: uuid.UUID
    owner: str
    user_addresses: frozenset[str]
    bcc_address: str
    labs: bool


@dataclass(slots=True)
class _Msg:
    id: uuid.UUID
    sub_account_id: uuid.UUID
    thread_id: uuid.UUID
    provider_message_id: str | None
    is_read: bool
    deleted: bool
    status: str
    row: dict[str, Any] | None = None  # inserted by this page: changes go into the row itself
    read_writeback_pending: bool = False  # the CRM changed its read state; the mailbox has not yet
    changes: dict[str, Any] = field(default_factory=dict)  # stored row: columns to update


@dataclass(slots=True)
class _Thread:
    id: uuid.UUID
    connection_id: uuid.UUID | None
    key: str | None
    row: dict[str, Any] | None = None  # created by this page
    key_changed: bool = False
    messages: int = 0
    unread: int = 0
    last_at: datetime | None = None  # the page's newest dated message (the later one on a tie)
    snippet: str = ""

    def add(self, sent_at: datetime | None, unread: bool, text: str) -> None:
        self.messages += 1
        self.unread += int(unread)
        if sent_at is not None:
            at = sent_at if sent_at.tzinfo else sent_at.replace(tzinfo=UTC)
            if self.last_at is None or self.last_at <= at:
                self.last_at, self.snippet = at, text


class PagePlan:
    def __init__(self, box: Mailbox, contents: dict[tuple[str, str], bytes], needed: list[tuple[str, str]] | None):
        """``needed`` set: a dry run that lists the attachments a synced message lacks."""
        self._box = box
        self._contents = contents
        self._needed = needed
        self.events: list[DomainEvent] = []
        self.imported = 0
        self.confidential = 0
        self._by_pid: dict[str, _Msg] = {}
        # The CRM's sends through this mailbox by Message-ID, oldest first (a relay may
        # give several one id).
        self._crm_sent: dict[str, list[_Msg]] = {}
        self._skipped: set[str] = set()
        self._threads: dict[uuid.UUID, _Thread] = {}
        self._thread_by_key: dict[str, _Thread] = {}
        self._thread_by_mid: dict[str, _Thread] = {}
        self._contacts: dict[str, uuid.UUID] = {}
        self._recount: set[uuid.UUID] = set()
        self._new_contacts: list[dict[str, Any]] = []
        self._new_messages: list[dict[str, Any]] = []
        self._attachments: list[dict[str, Any]] = []
        self._skips: list[dict[str, Any]] = []
        self._stored_changed: list[_Msg] = []

    # ---- read what the page needs

    async def load(self, db: AsyncConnection, changes: list[MailChange]) -> None:
        box = self._box
        for r in await repo.messages_by_provider_ids(db, box.connection_id, [c.provider_id for c in changes]):
            self._by_pid[r.provider_message_id] = self._known(r)
        new = [c.message for c in changes if c.message is not None and not c.message.is_draft
               and c.kind is ChangeKind.UPSERT and c.provider_id not in self._by_pid]
        if not new:
            return
        self._skipped = await repo.skipped_provider_ids(db, box.connection_id, [m.provider_id for m in new])
        headers = [h for m in new if self._from_mailbox(m) and (h := _header_of(m))]
        for r in await repo.crm_sends_by_headers(db, box.sub_account_id, box.connection_id, headers):
            self._thread(r.thread_id, r.thread_connection_id, r.thread_key)
            known = self._by_pid.get(r.provider_message_id) or self._known(r)
            self._crm_sent.setdefault(r.message_id_header, []).append(known)
        for tid, conn_id, key in await repo.threads_by_keys(db, box.connection_id, [m.thread_key for m in new if m.thread_key is not None]):
            self._thread_by_key[key] = self._thread(tid, conn_id, key)
        refs = [mid for m in new for mid in referenced_ids(m)]
        for header, tid, conn_id, key in await repo.threads_by_message_headers(db, box.sub_account_id,
                                                                              box.connection_id, refs):
            # A Message-ID shared by messages of several threads: the oldest one's thread.
            if header not in self._thread_by_mid:
                self._thread_by_mid[header] = self._thread(tid, conn_id, key)
        emails = {a.normalized for m in new for a in participants(m)}
        self._contacts = await repo.contact_ids_by_emails(db, box.sub_account_id, emails)

    def _from_mailbox(self, msg: MailMessage) -> bool:
        """Sent by the mailbox itself: its Sent copy, or the Inbox copy of mail it addressed
        to itself. Only these can be a copy of the CRM's send through it."""
        return msg.folder is Folder.SENT or (msg.sender is not None and msg.sender.normalized == self._box.owner)

    @staticmethod
    def _known(r: Row[Any]) -> _Msg:
        return _Msg(r.id, r.sub_account_id, r.thread_id, r.provider_message_id, r.is_read, r.deleted_in_mailbox,
                    r.status, read_writeback_pending=r.read_writeback_pending)

    def _thread(self, tid: uuid.UUID, connection_id: uuid.UUID | None, key: str | None) -> _Thread:
        # One object per thread, whichever lookup found it, so a key set on it is seen by all.
        if tid not in self._threads:
            self._threads[tid] = _Thread(tid, connection_id, key)
        return self._threads[tid]

    # ---- decide, in page order

    def apply(self, change: MailChange) -> None:
        known = self._by_pid.get(change.provider_id)
        if change.kind is ChangeKind.REMOVED:
            if known is not None and not known.deleted:
                known.deleted = True
                self._change(known, deleted_in_mailbox=True)
                self.events.append(self._event(EventType.MESSAGE_UPDATED, known))
            return
        if change.kind is ChangeKind.READ_STATE:
            if known is not None and change.is_read is not None:
                self._set_read(known, change.is_read)
            return
        msg = change.message
        assert msg is not None
        if known is not None:
            self._set_read(known, msg.is_read)
            return
        if msg.is_draft or msg.provider_id in self._skipped:
            return
        header = _header_of(msg)
        if header and self._from_mailbox(msg) and (sends := self._crm_sent.get(header)):
            same = next((s for s in sends if s.provider_message_id == msg.provider_id), None)
            if same is not None:
                # This very copy is the CRM message: the outbox linked it after this page's
                # lookup by provider id ran (each statement sees the latest commit).
                self._set_read(same, msg.is_read)
                return
            unlinked = next((s for s in sends if s.provider_message_id is None), None)
            if msg.folder is Folder.SENT and unlinked is not None:
                self._adopt_sent_copy(unlinked, msg)
            else:
                # Every send with this id already has its Sent copy, or this is the Inbox
                # copy of a send to the mailbox itself: the CRM shows the message already.
                self._skip(msg.provider_id, COPY_OF_CRM_SEND, detail=COPY_OF_CRM_SEND_DETAIL,
                           subject=storable(msg.subject), from_email=_clip(msg.sender.email, 320) if msg.sender else None,
                           sent_at=msg.sent_at)
            return
        # Anything else with a known Message-ID (an inbound message reusing it, a resend,
        # a second copy) is a message of its own.
        self._import_new(msg, header)

    def _import_new(self, msg: MailMessage, header: str | None) -> None:
        box = self._box
        thread = self._find_thread(msg)
        contacts = {a: self._contacts[a] for a in (p.normalized for p in participants(msg)) if a in self._contacts}
        selection = select(
            msg,
            SelectionFacts(owner_address=box.owner, user_addresses=box.user_addresses,
                           contact_addresses=contacts.keys(), bcc_sync_address=box.bcc_address,
                           labs_two_way_sync=box.labs, in_existing_thread=thread is not None),
        )
        if selection.verdict is Verdict.CONFIDENTIAL:
            # Nothing of it is kept but an opaque id, so the count stays exact across replays.
            self._skip(msg.provider_id, CONFIDENTIAL)
            self.confidential += 1
            return
        if selection.verdict is Verdict.NO_SENDER:
            self._skip(msg.provider_id, Verdict.NO_SENDER.value, detail=NO_SENDER_DETAIL,
                       subject=storable(msg.subject), sent_at=msg.sent_at)
            return
        if selection.verdict is not Verdict.SYNC:
            return
        blobs, problem = _attachment_bytes(msg, self._contents, self._needed)
        if problem is not None:
            self._skip(msg.provider_id, problem[0], detail=storable(problem[1]), subject=storable(msg.subject),
                       from_email=_clip(msg.sender.email, 320) if msg.sender else None, sent_at=msg.sent_at)
            return
        for address in selection.new_contacts:
            new_contact_id = new_id()
            self._new_contacts.append({"id": new_contact_id, "sub_account_id": box.sub_account_id,
                                       "email": _clip(address, 320), "email_normalized": _clip(address, 320),
                                       "source": "bcc"})
            self._contacts[address] = contacts[address] = new_contact_id
        contact_id = contacts.get(selection.contact_address or "")
        if thread is None:
            thread = self._thread(new_id(), box.connection_id, msg.thread_key)
            thread.row = {"sub_account_id": box.sub_account_id, "user_id": box.user_id, "contact_id": contact_id,
                          "connection_id": box.connection_id, "subject": storable(msg.subject) or ""}
            if msg.thread_key:
                self._thread_by_key[msg.thread_key] = thread
            self.events.append(DomainEvent(type=EventType.THREAD_CREATED, sub_account_id=str(box.sub_account_id),
                                           thread_id=str(thread.id)))
        elif thread.key is None and thread.connection_id == box.connection_id and msg.thread_key:
            self._set_key(thread, msg.thread_key)
        row = _message_row(msg, header, thread.id, box)
        self._new_messages.append(row)
        known = _Msg(row["id"], box.sub_account_id, thread.id, msg.provider_id, row["is_read"], False, "synced", row=row)
        self._by_pid[msg.provider_id] = known
        if header:
            self._thread_by_mid.setdefault(header, thread)
        for att, data in blobs:
            self._attachments.append({"id": new_id(), "message_id": row["id"], "sub_account_id": box.sub_account_id,
                                      "filename": _clip(att.filename, 512), "content_type": _clip(att.content_type, 200),
                                      "size": len(data),
                                      "provider_attachment_id": att.provider_attachment_id, "content": data})
        thread.add(row["sent_at"], row["direction"] == "inbound" and not row["is_read"], row["snippet"])
        self.imported += 1
        self.events.append(self._event(EventType.MESSAGE_ADDED, known))

    def _find_thread(self, msg: MailMessage) -> _Thread | None:
        by_key = {}
        if msg.thread_key and (t := self._thread_by_key.get(msg.thread_key)) is not None:
            by_key[msg.thread_key] = t
        by_mid = {mid: self._thread_by_mid[mid] for mid in referenced_ids(msg) if mid in self._thread_by_mid}
        return match_thread(msg, by_key, by_mid)

    def _adopt_sent_copy(self, ours: _Msg, msg: MailMessage) -> None:
        """The Sent-folder copy of a message the CRM sent (not linked yet): link it, never
        insert it again."""
        ours.provider_message_id = msg.provider_id
        self._change(ours, provider_message_id=msg.provider_id)
        self._by_pid[msg.provider_id] = ours
        if ours.status in ("queued", "failed"):
            # It is in the Sent folder, so it went out (e.g. the send's response was lost).
            ours.status = "sent"
            self._change(ours, status="sent", error=None)
            self.events.append(self._event(EventType.MESSAGE_UPDATED, ours))  # subscribers still show "queued"
        thread = self._threads.get(ours.thread_id)
        if thread is not None and thread.key is None and msg.thread_key:
            self._set_key(thread, msg.thread_key)

    def _set_key(self, thread: _Thread, key: str) -> None:
        owner = self._thread_by_key.get(key)
        if owner is not None and owner is not thread:
            # Another thread of this connection already has the conversation (the contact
            # wrote first): keys are unique per connection, and a clash would fail the page
            # on every retry. That thread keeps the key; this one joins by Message-ID.
            return
        thread.key, thread.key_changed = key, True
        if thread.connection_id == self._box.connection_id:
            self._thread_by_key[key] = thread

    def _set_read(self, known: _Msg, is_read: bool) -> None:
        if known.is_read == is_read or known.read_writeback_pending:
            # Pending: the mailbox still shows the state from before the user's change in
            # the CRM; the write-back will bring it in line, it must not undo the change.
            return
        known.is_read = is_read
        self._change(known, is_read=is_read)
        self._recount.add(known.thread_id)
        self.events.append(self._event(EventType.MESSAGE_UPDATED, known))

    def _change(self, known: _Msg, **values: Any) -> None:
        if known.row is not None:
            known.row.update(values)
            return
        if not known.changes:
            self._stored_changed.append(known)
        known.changes.update(values)

    def _skip(self, provider_id: str, reason: str, **details: Any) -> None:
        box = self._box
        self._skips.append({"id": new_id(), "sub_account_id": box.sub_account_id, "connection_id": box.connection_id,
                            "user_id": box.user_id, "provider_message_id": provider_id, "reason": reason,
                            "detail": None, "subject": None, "from_email": None, "sent_at": None, **details})
        self._skipped.add(provider_id)

    def _event(self, kind: str, known: _Msg) -> DomainEvent:
        return DomainEvent(type=kind, sub_account_id=str(known.sub_account_id), thread_id=str(known.thread_id),
                           message_id=str(known.id))

    # ---- write the outcome (parents before children)

    async def store(self, db: AsyncConnection) -> None:
        await repo.insert_contacts(db, self._new_contacts)
        await repo.insert_threads(db, [
            {**t.row, "id": t.id, "provider_thread_key": t.key, "message_count": t.messages, "unread_count": t.unread,
             "last_message_at": t.last_at, "snippet": t.snippet}
            for t in self._threads.values() if t.row is not None
        ])
        stored = [t for t in self._threads.values() if t.row is None]
        await repo.set_thread_keys(db, self._box.sub_account_id, {t.id: t.key for t in stored if t.key_changed and t.key})
        await repo.insert_messages(db, self._new_messages)
        await repo.insert_attachments(db, self._attachments)
        await repo.insert_skips(db, self._skips)
        await repo.update_messages(db, self._box.sub_account_id, {m.id: m.changes for m in self._stored_changed})
        await repo.add_to_threads(db, self._box.sub_account_id, [
            repo.ThreadIncrement(t.id, t.messages, t.unread, t.last_at, t.snippet) for t in stored if t.messages
        ])
        # After the inserts and the increments: the recount is what the thread holds.
        await repo.recount_unread(db, self._box.sub_account_id, self._recount)


def _attachment_bytes(
    msg: MailMessage, contents: dict[tuple[str, str], bytes], needed: list[tuple[str, str]] | None
) -> tuple[list[tuple[AttachmentData, bytes]], tuple[str, str] | None]:
    """The message's attachments with their bytes, or the skip (reason, detail) of the first
    one that may not sync."""
    blobs: list[tuple[AttachmentData, bytes]] = []
    for att in msg.attachments:
        declared = check_declared(att.filename, att.size)
        if declared.problem is not None:
            return [], (declared.problem.value, declared.detail)
        key = (msg.provider_id, att.provider_attachment_id or "")
        data = att.content if att.content is not None else contents.get(key)
        if data is None and needed is not None:
            needed.append(key)  # dry run: carry on as if it were here, so later changes see this message
            blobs.append((att, b""))
            continue
        if data is None:
            raise AttachmentNotDownloaded(key)
        verdict = check_content(att.filename, data)
        if verdict.problem is not None:
            return [], (verdict.problem.value, verdict.detail)
        blobs.append((att, data))
    return blobs, None


def _header_of(msg: MailMessage) -> str | None:
    """The message's Message-ID as stored; one longer than an RFC 5322 line (998) is not
    an id anyone can match, and would not fit its column."""
    header = storable(normalize_message_id(msg.message_id))
    return header if header is not None and len(header) <= 998 else None


def _clip(value: str | None, size: int) -> str | None:
    """A value from the wild cut to its column's width (db/models): a page must never fail
    on one odd message, since it would fail again on every retry."""
    value = storable(value)
    return value[:size] if value else value


def _people(addresses: list[Address]) -> list[dict[str, Any]]:
    return [{"email": storable(a.email), "name": storable(a.name)} for a in addresses]


def _message_row(msg: MailMessage, header: str | None, thread_id: uuid.UUID, box: Mailbox) -> dict[str, Any]:
    inbound = msg.folder is Folder.INBOX
    html = sanitize_html(msg.html)
    return {
        "id": new_id(),
        "sub_account_id": box.sub_account_id,
        "thread_id": thread_id,
        "connection_id": box.connection_id,
        "direction": "inbound" if inbound else "outbound",
        "origin": "mailbox",
        "status": "synced",
        "provider_message_id": msg.provider_id,
        "message_id_header": header,
        "in_reply_to": storable(normalize_message_id(msg.in_reply_to)),
        "references": storable(" ".join(msg.references)) or None,
        "subject": storable(msg.subject) or "",
        "from_email": _clip(msg.sender.email, 320) if msg.sender else None,
        "from_name": _clip(msg.sender.name, 200) if msg.sender else None,
        "to_addresses": _people(msg.to),
        "cc_addresses": _people(msg.cc),
        "bcc_addresses": _people(msg.bcc),
        "html": html,
        "text": storable(msg.text),
        "snippet": snippet(msg.text, html),
        "is_read": msg.is_read if inbound else True,
        "deleted_in_mailbox": False,
        "sent_at": msg.sent_at,
    }
