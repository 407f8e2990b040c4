from datetime import UTC, datetime

import pytest

from sync_engine.domain import Address, Folder, MailMessage
from sync_engine.rules.selection import SelectionFacts, Verdict, select

OWNER = "owner@biz.example"
BCC = "sync-abc@bcc.emailsync.test"


def msg(folder: Folder, sender: str, to: list[str], cc: list[str] = (), bcc: list[str] = ()) -> MailMessage:
    return MailMessage(
        provider_id="p1", thread_key="t1", folder=folder, message_id="<m1@x>", in_reply_to=None, references=[],
        subject="Hi", sender=Address(sender), to=[Address(a) for a in to], cc=[Address(a) for a in cc],
        bcc=[Address(a) for a in bcc], sent_at=datetime(2026, 1, 1, tzinfo=UTC), is_read=False,
    )


def facts(**kw) -> SelectionFacts:
    base = dict(owner_address=OWNER, user_addresses={OWNER, "colleague@biz.example"}, contact_addresses=set(),
                bcc_sync_address=BCC, labs_two_way_sync=True, in_existing_thread=False)
    base.update(kw)
    return SelectionFacts(**base)


def test_inbound_from_known_contact_starts_a_thread():
    s = select(msg(Folder.INBOX, "Ann@Client.example", [OWNER]), facts(contact_addresses={"ann@client.example"}))
    assert s.verdict is Verdict.SYNC and s.contact_address == "ann@client.example"


def test_inbound_from_stranger_is_not_synced():
    assert select(msg(Folder.INBOX, "who@else.example", [OWNER]), facts()).verdict is Verdict.NOT_RELEVANT


def test_labs_off_only_existing_threads_sync():
    m = msg(Folder.INBOX, "ann@client.example", [OWNER])
    off = facts(contact_addresses={"ann@client.example"}, labs_two_way_sync=False)
    assert select(m, off).verdict is Verdict.NOT_RELEVANT
    assert select(m, facts(labs_two_way_sync=False, in_existing_thread=True)).verdict is Verdict.SYNC


def test_mail_with_another_user_is_confidential_even_in_a_thread_and_even_if_a_contact():
    m = msg(Folder.INBOX, "ann@client.example", [OWNER], cc=["Colleague@biz.example"])
    f = facts(contact_addresses={"ann@client.example", "colleague@biz.example"}, in_existing_thread=True)
    assert select(m, f).verdict is Verdict.CONFIDENTIAL


def test_outbound_with_bcc_address_creates_contacts():
    m = msg(Folder.SENT, OWNER, ["new@client.example"], bcc=[BCC.upper()])
    s = select(m, facts())
    assert s.verdict is Verdict.SYNC
    assert s.new_contacts == ("new@client.example",)
    assert s.contact_address == "new@client.example"


def test_outbound_with_bcc_but_labs_off_creates_nothing():
    m = msg(Folder.SENT, OWNER, ["new@client.example"], cc=[BCC])
    assert select(m, facts(labs_two_way_sync=False)).verdict is Verdict.NOT_RELEVANT


def test_outbound_without_bcc_to_stranger_is_not_synced():
    assert select(msg(Folder.SENT, OWNER, ["new@client.example"]), facts()).verdict is Verdict.NOT_RELEVANT


@pytest.mark.parametrize("folder", [Folder.INBOX, Folder.SENT])
def test_reply_in_existing_thread_syncs_both_directions(folder):
    m = msg(folder, OWNER if folder is Folder.SENT else "ann@client.example", ["ann@client.example" if folder is Folder.SENT else OWNER])
    assert select(m, facts(in_existing_thread=True)).verdict is Verdict.SYNC
