"""A Message-ID is not unique in the wild (DESIGN.md section 6): the importer keeps every
message that reuses one, adopts by Message-ID only the Sent copy of the CRM's own send
(one copy per send, even when sends share an id), reports any further copy of a CRM send
(another Sent copy, the Inbox copy of mail to oneself) as a sync skip, and still dedupes
replays of one provider message by its provider id. Mail in the wild
that no database column takes as it is (NUL, lone surrogates, over-long values) and
inbound mail without a sender are stored or reported, never a page that fails forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from db.base import utcnow
from db.engine import create_engine, create_sessionmaker
from db.models import Contact, EmailConnection, Message, SubAccount, SyncSkip, Thread, User
from sync_engine.domain import Address, ChangeKind, Folder, MailChange, MailMessage, SyncPage
from sync_engine.services.import_changes import PageImporter

OWNER = "owner@biz.test"
ANN = "ann@client.test"
BOB = "bob@client.test"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SHARED = "<shared-id@broken-mailer.test>"


def _mail(pid: str, *, sender: str | None, mid: str | None, folder: Folder = Folder.INBOX, key: str | None = None,
          subject: str = "", text: str = "", minutes: int = 0, reply_to: str | None = None,
          to: list[str] | None = None, cc: list[str] | None = None) -> MailChange:
    to = to if to is not None else [OWNER if folder is Folder.INBOX else ANN]
    msg = MailMessage(
        provider_id=pid, thread_key=key, folder=folder, message_id=mid, in_reply_to=reply_to,
        references=[reply_to] if reply_to else [], subject=subject or f"subject {pid}",
        sender=Address(sender) if sender else None, to=[Address(a) for a in to], cc=[Address(a) for a in cc or []],
        bcc=[], sent_at=T0 + timedelta(minutes=minutes), is_read=folder is Folder.SENT, text=text or f"body of {pid}",
    )
    return MailChange(ChangeKind.UPSERT, pid, message=msg)


class _NoDownloads:
    async def fetch_attachment(self, provider_message_id: str, provider_attachment_id: str) -> bytes:
        raise AssertionError("no attachment here")


async def _setup(sessions: Any) -> EmailConnection:
    async with sessions.begin() as session:
        account = SubAccount(agency_id="a", name="n", bcc_sync_address="sync@bcc.test", labs_two_way_sync=True)
        session.add(account)
        await session.flush()
        user = User(sub_account_id=account.id, email=OWNER, email_normalized=OWNER, role="user")
        session.add(user)
        for email in (ANN, BOB):
            session.add(Contact(sub_account_id=account.id, email=email, email_normalized=email))
        await session.flush()
        conn = EmailConnection(sub_account_id=account.id, user_id=user.id, provider="outlook", address=OWNER,
                               status="active", is_current=True, sync_lease_owner="me")
        session.add(conn)
    return conn


async def _apply(sessions: Any, conn: EmailConnection, changes: list[MailChange], cursor: str) -> None:
    importer = PageImporter(sessions, utcnow, conn, _NoDownloads())
    await importer.apply(SyncPage(changes, {"inbox": cursor}), "me", timedelta(minutes=5))


async def _messages(sessions: Any) -> dict[str | None, Message]:
    async with sessions() as s:
        return {m.provider_message_id: m for m in await s.scalars(select(Message))}


async def _skips(sessions: Any) -> list[tuple[str, str, str | None]]:
    async with sessions() as s:
        return sorted((k.provider_message_id, k.reason, k.subject) for k in await s.scalars(select(SyncSkip)))


async def _crm_send(sessions: Any, conn: EmailConnection, mid: str, subject: str, *, minutes: int = 0,
                    to: str = ANN, cc: list[str] | None = None) -> Message:
    """What ``send`` commits before the provider call: a thread and its queued message."""
    async with sessions.begin() as s:
        thread = Thread(sub_account_id=conn.sub_account_id, user_id=conn.user_id, connection_id=conn.id,
                        subject=subject, message_count=1, last_message_at=T0 + timedelta(minutes=minutes))
        s.add(thread)
        await s.flush()
        message = Message(sub_account_id=conn.sub_account_id, thread_id=thread.id, connection_id=conn.id,
                          direction="outbound", origin="crm", status="queued", message_id_header=mid,
                          subject=subject, from_email=OWNER, to_addresses=[{"email": to, "name": None}],
                          cc_addresses=[{"email": a, "name": None} for a in cc or []], is_read=True,
                          sent_at=T0 + timedelta(minutes=minutes),
                          created_at=utcnow() + timedelta(seconds=minutes))  # oldest first: in send order
        s.add(message)
    return message


async def test_messages_sharing_a_message_id_are_each_kept_and_replays_still_dedupe(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        page = [
            _mail("a1", sender=ANN, mid=SHARED, key="conv-a", subject="Offer", text="first"),
            # A different sender's mailer reuses the id: its own message, in its own thread.
            _mail("b1", sender=BOB, mid=SHARED, key="conv-b", subject="Question", text="second", minutes=1),
            # A resend by the same sender, same id, new provider message.
            _mail("a2", sender=ANN, mid=SHARED, key="conv-a", subject="Offer", text="first again", minutes=2),
        ]
        await _apply(sessions, conn, page, "1")
        # Later pages: the id again, and a replay of every provider message already seen.
        await _apply(sessions, conn, [*page, _mail("b2", sender=BOB, mid=SHARED, key="conv-b", minutes=3)], "2")
        messages = await _messages(sessions)
        assert sorted(messages) == ["a1", "a2", "b1", "b2"]
        assert {m.message_id_header for m in messages.values()} == {SHARED}
        assert messages["a1"].thread_id == messages["a2"].thread_id != messages["b1"].thread_id
        assert (messages["a1"].text, messages["b1"].from_email) == ("first", BOB)
        async with sessions() as s:
            conn_row = await s.get(EmailConnection, conn.id)
            assert conn_row is not None and conn_row.messages_synced == 4

        # A reply naming the shared id joins the thread of the oldest message holding it.
        await _apply(sessions, conn, [_mail("r1", sender=ANN, mid="<r1@client.test>", key="conv-r", reply_to=SHARED,
                                            minutes=4)], "3")
        messages = await _messages(sessions)
        assert messages["r1"].thread_id == messages["a1"].thread_id
    finally:
        await engine.dispose()


async def test_only_the_sent_copy_of_a_crm_send_is_adopted_by_message_id(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    crm_id = "<crm-1@biz.test>"
    try:
        conn = await _setup(sessions)
        async with sessions.begin() as s:  # what ``send`` commits before the provider call
            thread = Thread(sub_account_id=conn.sub_account_id, user_id=conn.user_id, connection_id=conn.id,
                            subject="Offer", message_count=1, last_message_at=T0)
            s.add(thread)
            await s.flush()
            s.add(Message(sub_account_id=conn.sub_account_id, thread_id=thread.id, connection_id=conn.id,
                          direction="outbound", origin="crm", status="queued", message_id_header=crm_id,
                          subject="Offer", is_read=True, sent_at=T0))
        await _apply(sessions, conn, [
            # The contact's broken mailer answers with our Message-ID as its own: not our copy.
            _mail("in-1", sender=ANN, mid=crm_id, key="conv-x", subject="Re: Offer", text="reply", minutes=2),
            # The Sent-folder copy of our send: the same message, adopted.
            _mail("sent-1", sender=OWNER, mid=crm_id, folder=Folder.SENT, key="conv-crm", minutes=1),
        ], "1")
        # Replayed, and a second Sent-folder copy (a later page): still the one CRM message,
        # and the copy is reported (once, though replayed), not dropped unseen.
        second = _mail("sent-1b", sender=OWNER, mid=crm_id, folder=Folder.SENT, key="conv-crm", subject="Offer",
                       minutes=1)
        await _apply(sessions, conn, [
            _mail("sent-1", sender=OWNER, mid=crm_id, folder=Folder.SENT, key="conv-crm", minutes=1), second,
        ], "2")
        await _apply(sessions, conn, [second], "3")
        messages = await _messages(sessions)
        assert sorted(messages) == ["in-1", "sent-1"]
        assert await _skips(sessions) == [("sent-1b", "copy_of_crm_send", "Offer")]
        ours, theirs = messages["sent-1"], messages["in-1"]
        assert (ours.origin, ours.status, ours.thread_id) == ("crm", "sent", thread.id)
        assert (theirs.origin, theirs.direction, theirs.text) == ("mailbox", "inbound", "reply")
        async with sessions() as s:
            stored = await s.get(Thread, thread.id)
            assert stored is not None and stored.provider_thread_key == "conv-crm"
    finally:
        await engine.dispose()


async def test_values_no_column_takes_as_they_are_are_stored_anyway(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        odd = _mail("odd", sender=ANN, mid="<" + "x" * 1200 + "@long.test>", key="conv-o",
                    subject="nul\x00 and lone \udcc3 surrogate", text="body\x00with nul \ud83d")
        assert odd.message is not None
        odd.message.sender = Address(ANN, "N" * 500)
        await _apply(sessions, conn, [odd], "1")
        stored = (await _messages(sessions))["odd"]
        assert stored.message_id_header is None  # longer than any RFC 5322 line: no id to match
        assert stored.subject == "nul and lone \ufffd surrogate" and stored.text == "bodywith nul \ufffd"
        assert stored.from_name == "N" * 200
    finally:
        await engine.dispose()


async def test_inbound_mail_without_a_sender_is_reported_as_a_skip(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        conn = await _setup(sessions)
        page = [_mail("anon", sender=None, mid="<anon@x.test>", key="conv-n", subject="Who am I")]
        await _apply(sessions, conn, page, "1")
        await _apply(sessions, conn, page, "2")  # replayed: reported once
        assert await _messages(sessions) == {}
        async with sessions() as s:
            skips = list(await s.scalars(select(SyncSkip)))
        assert [(k.provider_message_id, k.reason, k.subject) for k in skips] == [("anon", "no_sender", "Who am I")]
    finally:
        await engine.dispose()


async def test_crm_sends_sharing_a_message_id_each_adopt_their_own_sent_copy(database_url: str) -> None:
    """A relay that rewrites Message-IDs may give two CRM sends one id: each Sent copy links
    the oldest send still without one, and a copy beyond the sends is reported."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    relay_id = "<rewritten@relay.test>"
    try:
        conn = await _setup(sessions)
        first = await _crm_send(sessions, conn, relay_id, "Offer")
        second = await _crm_send(sessions, conn, relay_id, "Invoice", minutes=1, to=BOB)
        await _apply(sessions, conn, [_mail("sent-a", sender=OWNER, mid=relay_id, folder=Folder.SENT, key="conv-a",
                                            subject="Offer")], "1")
        # The second send's copy on a later page, with a third copy and a replay on the same page.
        page = [
            _mail("sent-b", sender=OWNER, mid=relay_id, folder=Folder.SENT, key="conv-b", subject="Invoice", minutes=1),
            _mail("sent-c", sender=OWNER, mid=relay_id, folder=Folder.SENT, key="conv-c", subject="Extra", minutes=2),
            _mail("sent-b", sender=OWNER, mid=relay_id, folder=Folder.SENT, key="conv-b", subject="Invoice", minutes=1),
        ]
        await _apply(sessions, conn, page, "2")
        await _apply(sessions, conn, page, "3")
        messages = await _messages(sessions)
        assert sorted(messages) == ["sent-a", "sent-b"]
        assert (messages["sent-a"].id, messages["sent-a"].status) == (first.id, "sent")
        assert (messages["sent-b"].id, messages["sent-b"].status) == (second.id, "sent")
        assert await _skips(sessions) == [("sent-c", "copy_of_crm_send", "Extra")]
        async with sessions() as s:
            keys = {t.id: t.provider_thread_key for t in await s.scalars(select(Thread))}
        assert keys == {first.thread_id: "conv-a", second.thread_id: "conv-b"}

        # Both copies on one page adopt one send each, in page order.
        both = "<both@relay.test>"
        third = await _crm_send(sessions, conn, both, "One", minutes=3)
        fourth = await _crm_send(sessions, conn, both, "Two", minutes=4)
        await _apply(sessions, conn, [
            _mail("sent-d", sender=OWNER, mid=both, folder=Folder.SENT, key="conv-d", minutes=3),
            _mail("sent-e", sender=OWNER, mid=both, folder=Folder.SENT, key="conv-e", minutes=4),
        ], "4")
        messages = await _messages(sessions)
        assert (messages["sent-d"].id, messages["sent-e"].id) == (third.id, fourth.id)
    finally:
        await engine.dispose()


async def test_the_inbox_copy_of_a_crm_send_to_the_mailbox_itself_is_a_skip_not_a_duplicate(
    database_url: str,
) -> None:
    """A CRM send Cc'ing the user's own address comes back into the Inbox: the CRM shows
    that email already (outbound), so the copy is reported, whichever copy syncs first."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    crm_id, later_id = "<crm-self@biz.test>", "<crm-self-2@biz.test>"
    try:
        conn = await _setup(sessions)
        ours = await _crm_send(sessions, conn, crm_id, "Offer", cc=[OWNER])
        inbox_copy = _mail("in-copy", sender=OWNER, mid=crm_id, key="conv-crm", subject="Offer", to=[ANN], cc=[OWNER])
        await _apply(sessions, conn, [
            _mail("sent-1", sender=OWNER, mid=crm_id, folder=Folder.SENT, key="conv-crm", subject="Offer", to=[ANN],
                  cc=[OWNER]),
            inbox_copy,  # in the conversation the Sent copy just gave the CRM thread
            # The contact's broken mailer reuses the id: not the owner's mail, a message of its own.
            _mail("in-ann", sender=ANN, mid=crm_id, key="conv-crm", subject="Re: Offer", minutes=2),
        ], "1")
        await _apply(sessions, conn, [inbox_copy], "2")  # replayed: reported once
        # A second send to oneself whose Inbox copy syncs on a page before its Sent copy.
        later = await _crm_send(sessions, conn, later_id, "Follow-up", minutes=5, to=OWNER)
        await _apply(sessions, conn, [_mail("in-copy-2", sender=OWNER, mid=later_id, key="conv-l",
                                            subject="Follow-up", minutes=5)], "3")
        await _apply(sessions, conn, [_mail("sent-2", sender=OWNER, mid=later_id, folder=Folder.SENT, key="conv-l",
                                            subject="Follow-up", to=[OWNER], minutes=5)], "4")
        messages = await _messages(sessions)
        assert sorted(messages) == ["in-ann", "sent-1", "sent-2"]
        assert (messages["sent-1"].id, messages["sent-2"].id) == (ours.id, later.id)
        assert (messages["in-ann"].direction, messages["in-ann"].thread_id) == ("inbound", ours.thread_id)
        assert await _skips(sessions) == [("in-copy", "copy_of_crm_send", "Offer"),
                                          ("in-copy-2", "copy_of_crm_send", "Follow-up")]
        async with sessions() as s:
            stored = await s.get(Thread, ours.thread_id)
            assert stored is not None and (stored.message_count, stored.unread_count) == (2, 1)
    finally:
        await engine.dispose()
