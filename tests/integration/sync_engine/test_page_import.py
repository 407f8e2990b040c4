"""A page of changes is decided as a whole but must come out exactly as if its changes
had been applied one after another: messages of one page that depend on each other
(a new thread and its reply, a contact created by BCC and its later mail, the CRM-sent
copy and a message joining its thread by conversation id, a provider id seen twice),
replayed pages, counters, events, and attachment downloads decided by the dry run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from db.base import utcnow
from db.engine import create_engine, create_sessionmaker
from db.models import (
    Attachment,
    Contact,
    EmailConnection,
    Message,
    SubAccount,
    SyncSkip,
    Thread,
    User,
)
from db.repositories import page_import as page_import_repo
from sync_engine.domain import (
    Address,
    AttachmentData,
    ChangeKind,
    Folder,
    MailChange,
    MailMessage,
    SyncPage,
)
from sync_engine.events import EventType
from sync_engine.services.import_changes import LeaseLost, PageImporter

OWNER = "owner@biz.test"
COLLEAGUE = "colleague@biz.test"
ANN = "ann@client.test"
BCC = "sync-page@bcc.test"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n"


def _mail(pid: str, *, sender: str, to: list[str], folder: Folder = Folder.INBOX, key: str | None = None,
          mid: str | None = None, reply_to: str | None = None, minutes: int = 0, read: bool = False,
          cc: list[str] | None = None, attachments: list[AttachmentData] | None = None) -> MailChange:
    msg = MailMessage(
        provider_id=pid, thread_key=key, folder=folder, message_id=mid or f"<{pid}@mail.test>",
        in_reply_to=reply_to, references=[reply_to] if reply_to else [], subject=f"subject {pid}",
        sender=Address(sender), to=[Address(a) for a in to], cc=[Address(a) for a in cc or []], bcc=[],
        sent_at=T0 + timedelta(minutes=minutes), is_read=read, text=f"body of {pid}",
        attachments=attachments or [],
    )
    return MailChange(ChangeKind.UPSERT, pid, message=msg)


class _Client:
    def __init__(self) -> None:
        self.fetched: list[tuple[str, str]] = []

    async def fetch_attachment(self, provider_message_id: str, provider_attachment_id: str) -> bytes:
        self.fetched.append((provider_message_id, provider_attachment_id))
        return PDF


async def _setup(sessions: Any) -> EmailConnection:
    async with sessions.begin() as session:
        account = SubAccount(agency_id="a", name="n", bcc_sync_address=BCC, labs_two_way_sync=True)
        session.add(account)
        await session.flush()
        for email in (OWNER, COLLEAGUE):
            session.add(User(sub_account_id=account.id, email=email, email_normalized=email, role="user"))
        session.add(Contact(sub_account_id=account.id, email=ANN, email_normalized=ANN))
        await session.flush()
        user = await session.scalar(select(User).where(User.email == OWNER))
        conn = EmailConnection(sub_account_id=account.id, user_id=user.id, provider="outlook", address=OWNER,
                               status="active", is_current=True, sync_lease_owner="me")
        session.add(conn)
    return conn


async def _apply(importer: PageImporter, changes: list[MailChange], cursor: str) -> list[tuple[str, str | None]]:
    events = await importer.apply(SyncPage(changes, {"inbox": cursor}), "me", timedelta(minutes=5))
    return [(e.type, e.message_id) for e in events]


async def _state(sessions: Any, conn_id: uuid.UUID) -> dict[str, Any]:
    async with sessions() as s:
        messages = {m.provider_message_id: m for m in await s.scalars(select(Message))}
        threads = list(await s.scalars(select(Thread).order_by(Thread.created_at)))
        conn = await s.get(EmailConnection, conn_id)
        skips = list(await s.scalars(select(SyncSkip)))
        contacts = {c.email_normalized: c for c in await s.scalars(select(Contact))}
        attachments = list(await s.scalars(select(Attachment)))
    return {"messages": messages, "threads": threads, "conn": conn, "skips": skips, "contacts": contacts,
            "attachments": attachments}


async def test_a_page_whose_messages_depend_on_each_other(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        importer = PageImporter(sessions, utcnow, conn, _Client())
        page = [
            # A new thread from a contact, then the owner's reply in the same conversation...
            _mail("a", sender=ANN, to=[OWNER], key="conv-1", minutes=1),
            _mail("b", sender=OWNER, to=[ANN], folder=Folder.SENT, key="conv-1", reply_to="<a@mail.test>",
                  minutes=2, read=True),
            # ...and a stranger answering b: joins only through b's Message-ID, stored on this page.
            _mail("c", sender="bob@other.test", to=[OWNER], key="conv-x", reply_to="<b@mail.test>", minutes=3),
            # The same provider id again, now read: an update of the row just inserted.
            _mail("a", sender=ANN, to=[OWNER], key="conv-1", minutes=1, read=True),
            # Mail with a colleague: never stored, counted once however often it is seen.
            _mail("e", sender=COLLEAGUE, to=[OWNER, ANN], key="conv-2", minutes=4),
            _mail("e", sender=COLLEAGUE, to=[OWNER, ANN], key="conv-2", minutes=4),
            # BCC rule: the recipient becomes a contact, so her next mail on the page starts a thread.
            _mail("f", sender=OWNER, to=["newbie@client.test"], cc=[BCC], folder=Folder.SENT, key="conv-3",
                  minutes=5, read=True),
            _mail("g", sender="newbie@client.test", to=[OWNER], key="conv-4", minutes=6),
            MailChange(ChangeKind.REMOVED, "b"),
            MailChange(ChangeKind.READ_STATE, "c", is_read=True),
            MailChange(ChangeKind.READ_STATE, "c", is_read=False),
        ]
        events = await _apply(importer, page, "1")
        state = await _state(sessions, conn.id)
        m = state["messages"]
        assert sorted(m) == ["a", "b", "c", "f", "g"]
        assert m["a"].thread_id == m["b"].thread_id == m["c"].thread_id
        assert m["a"].is_read and not m["c"].is_read and m["b"].deleted_in_mailbox
        assert state["conn"].messages_synced == 5 and state["conn"].confidential_skipped == 1
        assert [s.provider_message_id for s in state["skips"]] == ["e"]
        assert state["contacts"]["newbie@client.test"].source == "bcc"
        by_key = {t.provider_thread_key: t for t in state["threads"]}
        first, bcc_thread, newbie_thread = by_key["conv-1"], by_key["conv-3"], by_key["conv-4"]
        assert (first.message_count, first.unread_count, first.provider_thread_key) == (3, 1, "conv-1")
        assert first.last_message_at == T0 + timedelta(minutes=3) and first.snippet == "body of c"
        assert bcc_thread.provider_thread_key == "conv-3" and bcc_thread.contact_id == newbie_thread.contact_id
        assert newbie_thread.contact_id == state["contacts"]["newbie@client.test"].id
        assert (newbie_thread.message_count, newbie_thread.unread_count) == (1, 1)
        ids = {pid: str(row.id) for pid, row in m.items()}
        assert events == [
            (EventType.THREAD_CREATED, None), (EventType.MESSAGE_ADDED, ids["a"]), (EventType.MESSAGE_ADDED, ids["b"]),
            (EventType.MESSAGE_ADDED, ids["c"]), (EventType.MESSAGE_UPDATED, ids["a"]),
            (EventType.THREAD_CREATED, None), (EventType.MESSAGE_ADDED, ids["f"]),
            (EventType.THREAD_CREATED, None), (EventType.MESSAGE_ADDED, ids["g"]),
            (EventType.MESSAGE_UPDATED, ids["b"]), (EventType.MESSAGE_UPDATED, ids["c"]),
            (EventType.MESSAGE_UPDATED, ids["c"]),
        ]

        # Replayed (a crash after commit, before the provider saw the cursor): no new row, and
        # the read flags walk through the same states to the same end (one event per flip).
        events = await _apply(importer, page, "1-again")
        assert events == [(EventType.MESSAGE_UPDATED, ids[pid]) for pid in ("a", "a", "c", "c")]
        again = await _state(sessions, conn.id)
        assert sorted(again["messages"]) == sorted(m) and len(again["threads"]) == 3 and len(again["skips"]) == 1
        replayed = next(t for t in again["threads"] if t.provider_thread_key == "conv-1")
        assert (replayed.message_count, replayed.unread_count) == (3, 1) and not again["messages"]["c"].is_read
        assert again["conn"].messages_synced == 5 and again["conn"].cursor == {"inbox": "1-again"}

        # A later page: an older message of the thread does not move its date back; a read
        # change and a new message of the same thread on one page leave exact counters.
        events = await _apply(importer, [
            _mail("h", sender=ANN, to=[OWNER], key="conv-1", minutes=0),
            MailChange(ChangeKind.READ_STATE, "c", is_read=True),
            _mail("i", sender=ANN, to=[OWNER], key="conv-1", minutes=0),
        ], "2")
        thread = next(t for t in (await _state(sessions, conn.id))["threads"] if t.provider_thread_key == "conv-1")
        assert (thread.message_count, thread.unread_count) == (5, 2)
        assert thread.last_message_at == T0 + timedelta(minutes=3) and thread.snippet == "body of c"
        assert [e[0] for e in events] == [EventType.MESSAGE_ADDED, EventType.MESSAGE_UPDATED, EventType.MESSAGE_ADDED]
    finally:
        await engine.dispose()


async def test_crm_sent_copy_is_adopted_and_its_conversation_joins_on_the_same_page(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        async with sessions.begin() as s:  # what ``send`` commits before the provider call
            thread = Thread(sub_account_id=conn.sub_account_id, user_id=conn.user_id, connection_id=conn.id,
                            subject="Offer", message_count=1, last_message_at=T0)
            s.add(thread)
            await s.flush()
            s.add(Message(sub_account_id=conn.sub_account_id, thread_id=thread.id, connection_id=conn.id,
                          direction="outbound", origin="crm", status="queued", message_id_header="<crm-1@biz.test>",
                          subject="Offer", is_read=True, sent_at=T0))
        importer = PageImporter(sessions, utcnow, conn, _Client())
        events = await _apply(importer, [
            _mail("sent-1", sender=OWNER, to=["stranger@other.test"], folder=Folder.SENT, key="conv-crm",
                  mid="<crm-1@biz.test>", read=True, minutes=1),
            # Not a contact, no references: only the conversation id just learnt puts it in the thread.
            _mail("reply-1", sender="stranger@other.test", to=[OWNER], key="conv-crm", minutes=2),
            # The user then deletes the Sent copy: found by the provider id learnt above.
            MailChange(ChangeKind.REMOVED, "sent-1"),
        ], "1")
        state = await _state(sessions, conn.id)
        assert sorted(state["messages"]) == ["reply-1", "sent-1"]
        ours = state["messages"]["sent-1"]
        assert (ours.origin, ours.status, ours.thread_id) == ("crm", "sent", thread.id) and ours.deleted_in_mailbox
        [stored] = state["threads"]
        assert stored.provider_thread_key == "conv-crm"
        assert (stored.message_count, stored.unread_count) == (2, 1)
        assert stored.last_message_at == T0 + timedelta(minutes=2)
        assert events == [(EventType.MESSAGE_UPDATED, str(ours.id)),  # queued -> sent: it is in Sent Items
                          (EventType.MESSAGE_ADDED, str(state["messages"]["reply-1"].id)),
                          (EventType.MESSAGE_UPDATED, str(ours.id))]  # deleted in the mailbox
    finally:
        await engine.dispose()


async def test_dry_run_downloads_only_attachments_of_mail_that_will_sync(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        client = _Client()
        importer = PageImporter(sessions, utcnow, conn, client)

        def pdf(att_id: str) -> list[AttachmentData]:
            return [AttachmentData("offer.pdf", "application/pdf", len(PDF), provider_attachment_id=att_id)]

        await _apply(importer, [
            _mail("p1", sender=ANN, to=[OWNER], key="conv-p", attachments=pdf("att-1")),
            _mail("p2", sender="nobody@other.test", to=[OWNER], key="conv-q", attachments=pdf("att-2")),
            # Syncs only because p1 (on this page) put conv-p in the CRM.
            _mail("p3", sender="nobody@other.test", to=[OWNER], key="conv-p", attachments=pdf("att-3")),
            _mail("p4", sender=ANN, to=[OWNER], key="conv-r",
                  attachments=[AttachmentData("run.exe", "application/octet-stream", 10, provider_attachment_id="x")]),
        ], "1")
        assert client.fetched == [("p1", "att-1"), ("p3", "att-3")]
        state = await _state(sessions, conn.id)
        assert sorted(state["messages"]) == ["p1", "p3"]
        assert sorted(a.provider_attachment_id for a in state["attachments"]) == ["att-1", "att-3"]
        assert all(a.content == PDF for a in state["attachments"])
        assert [(s.provider_message_id, s.reason) for s in state["skips"]] == [("p4", "attachment_type_not_allowed")]
    finally:
        await engine.dispose()


async def test_a_page_is_not_stored_without_the_lease(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        importer = PageImporter(sessions, utcnow, conn, _Client())
        with pytest.raises(LeaseLost):
            await importer.apply(SyncPage([_mail("a", sender=ANN, to=[OWNER])], {"inbox": "1"}), "someone-else",
                                 timedelta(minutes=5))
        state = await _state(sessions, conn.id)
        assert state["messages"] == {} and state["threads"] == [] and state["conn"].cursor is None
    finally:
        await engine.dispose()


async def test_a_conversation_key_owned_by_another_thread_is_not_taken(database_url: str) -> None:
    """The contact's own mail started a thread with conversation X; the Sent copy of a CRM
    send then carries X too. Keys are unique per connection: the CRM thread must not take
    it (the page would fail on every retry), and the page still applies."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        async with sessions.begin() as s:
            theirs = Thread(sub_account_id=conn.sub_account_id, user_id=conn.user_id, connection_id=conn.id,
                            subject="Question", provider_thread_key="conv-x", message_count=0, last_message_at=T0)
            ours = Thread(sub_account_id=conn.sub_account_id, user_id=conn.user_id, connection_id=conn.id,
                          subject="Answer", message_count=1, last_message_at=T0)
            s.add_all([theirs, ours])
            await s.flush()
            s.add(Message(sub_account_id=conn.sub_account_id, thread_id=ours.id, connection_id=conn.id,
                          direction="outbound", origin="crm", status="sent", message_id_header="<crm-2@biz.test>",
                          subject="Answer", is_read=True, sent_at=T0))
            theirs_id, ours_id = theirs.id, ours.id
        importer = PageImporter(sessions, utcnow, conn, _Client())
        await _apply(importer, [_mail("sent-2", sender=OWNER, to=[ANN], folder=Folder.SENT, key="conv-x",
                                      mid="<crm-2@biz.test>", read=True, minutes=1)], "1")
        state = await _state(sessions, conn.id)
        keys = {t.id: t.provider_thread_key for t in state["threads"]}
        assert keys == {theirs_id: "conv-x", ours_id: None}
        assert state["messages"]["sent-2"].thread_id == ours_id  # the copy is still linked
    finally:
        await engine.dispose()


async def test_a_sender_who_becomes_a_contact_between_the_phases_keeps_the_attachment(database_url: str) -> None:
    """The dry run saw a stranger (nothing to download); before the write phase the sender
    became a contact. The message syncs with its attachment instead of a permanent skip."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    newcomer = "newcomer@client.test"
    try:
        conn = await _setup(sessions)

        class ContactCreatedMeanwhile(PageImporter):
            async def _download_needed_attachments(self, changes, have=None):  # type: ignore[no-untyped-def]
                contents = await super()._download_needed_attachments(changes, have)
                async with sessions.begin() as s:  # e.g. a createContact mutation, committed meanwhile
                    if await s.scalar(select(Contact).where(Contact.email_normalized == newcomer)) is None:
                        s.add(Contact(sub_account_id=conn.sub_account_id, email=newcomer, email_normalized=newcomer))
                return contents

        client = _Client()
        importer = ContactCreatedMeanwhile(sessions, utcnow, conn, client)
        await _apply(importer, [_mail("n1", sender=newcomer, to=[OWNER], key="conv-n", attachments=[
            AttachmentData("offer.pdf", "application/pdf", len(PDF), provider_attachment_id="att-n")])], "1")
        assert client.fetched == [("n1", "att-n")]
        state = await _state(sessions, conn.id)
        assert list(state["messages"]) == ["n1"]
        async with sessions() as s:
            assert list(await s.scalars(select(SyncSkip))) == []
            [attachment] = list(await s.scalars(select(Attachment)))
        assert attachment.filename == "offer.pdf" and attachment.content == PDF
    finally:
        await engine.dispose()


async def test_a_read_state_waiting_to_be_written_back_is_not_undone_by_the_mailbox(database_url: str) -> None:
    """The user marked the message read in the CRM; until that reaches the mailbox, the
    mailbox still says unread, and a sync pass must not take that for a new change."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        importer = PageImporter(sessions, utcnow, conn, _Client())
        await _apply(importer, [_mail("r1", sender=ANN, to=[OWNER], key="conv-r"),
                                _mail("r2", sender=ANN, to=[OWNER], key="conv-r", minutes=1)], "1")
        async with sessions.begin() as s:  # what markThreadRead commits
            for message in await s.scalars(select(Message)):
                message.is_read, message.read_writeback_pending = True, message.provider_message_id == "r1"
        events = await _apply(importer, [MailChange(ChangeKind.READ_STATE, "r1", is_read=False),
                                         _mail("r2", sender=ANN, to=[OWNER], key="conv-r", minutes=1, read=False)], "2")
        state = await _state(sessions, conn.id)
        assert state["messages"]["r1"].is_read is True  # pending: kept
        assert state["messages"]["r2"].is_read is False  # written back already: the mailbox's change counts
        assert events == [(EventType.MESSAGE_UPDATED, str(state["messages"]["r2"].id))]
    finally:
        await engine.dispose()


async def test_a_sent_copy_linked_by_the_outbox_during_the_page_is_not_reported_as_a_copy(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox records the provider id of a CRM send (its Sent copy) while a sync pass is
    reading the page that holds that very copy: the pass's lookup by provider id ran just
    before the outbox committed, its lookup by Message-ID just after (each statement sees
    the latest commit). The copy is the CRM message itself, not a second copy to report."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        async with sessions.begin() as s:
            thread = Thread(sub_account_id=conn.sub_account_id, user_id=conn.user_id, connection_id=conn.id,
                            subject="Quote", message_count=1, last_message_at=T0)
            s.add(thread)
            await s.flush()
            crm = Message(sub_account_id=conn.sub_account_id, thread_id=thread.id, connection_id=conn.id,
                          direction="outbound", origin="crm", status="queued", message_id_header="<crm-9@biz.test>",
                          subject="Quote", is_read=True, sent_at=T0)
            s.add(crm)
        lookup_by_provider_id = page_import_repo.messages_by_provider_ids

        async def outbox_commits_right_after(*args: Any, **kwargs: Any) -> Any:
            found = await lookup_by_provider_id(*args, **kwargs)
            async with sessions.begin() as s:  # the outbox's record of the send, in its own transaction
                sent = await s.get(Message, crm.id)
                assert sent is not None
                sent.provider_message_id, sent.status = "sent-9", "sent"
            return found

        monkeypatch.setattr(page_import_repo, "messages_by_provider_ids", outbox_commits_right_after)
        importer = PageImporter(sessions, utcnow, conn, _Client())
        await _apply(importer, [_mail("sent-9", sender=OWNER, to=[ANN], folder=Folder.SENT, mid="<crm-9@biz.test>",
                                      read=True, minutes=1)], "1")
        state = await _state(sessions, conn.id)
        assert state["skips"] == []
        assert state["messages"]["sent-9"].id == crm.id
    finally:
        await engine.dispose()
