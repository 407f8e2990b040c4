"""Inbound mail with no sender address (rules.selection): reported as a skip, not dropped
unseen like a stranger's mail, since it cannot be told apart from a contact's."""

from datetime import UTC, datetime

from sync_engine.domain import Address, Folder, MailMessage
from sync_engine.rules.selection import SelectionFacts, Verdict, select

OWNER = "owner@biz.example"


def _inbound(sender: Address | None) -> MailMessage:
    return MailMessage(
        provider_id="p1", thread_key="t1", folder=Folder.INBOX, message_id="<m1@x>", in_reply_to=None, references=[],
        subject="Hi", sender=sender, to=[Address(OWNER)], cc=[], bcc=[], sent_at=datetime(2026, 1, 1, tzinfo=UTC),
        is_read=False,
    )


def _facts(**kw: object) -> SelectionFacts:
    base: dict = dict(owner_address=OWNER, user_addresses={OWNER}, contact_addresses={"ann@client.example"},
                      bcc_sync_address="sync@bcc.test", labs_two_way_sync=True, in_existing_thread=False)
    base.update(kw)
    return SelectionFacts(**base)


def test_inbound_without_a_sender_address_is_reported_not_dropped() -> None:
    for sender in (None, Address("")):
        assert select(_inbound(sender), _facts()).verdict is Verdict.NO_SENDER
    # A stranger's mail stays unrecorded.
    assert select(_inbound(Address("who@else.example")), _facts()).verdict is Verdict.NOT_RELEVANT


def test_without_labs_or_inside_a_crm_thread_the_usual_rules_apply() -> None:
    assert select(_inbound(None), _facts(labs_two_way_sync=False)).verdict is Verdict.NOT_RELEVANT
    assert select(_inbound(None), _facts(in_existing_thread=True)).verdict is Verdict.SYNC
