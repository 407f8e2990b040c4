"""The outbox's pure decisions: what an attempt sends, and what a failure leads to."""

from __future__ import annotations

import uuid

import pytest

from db.models import Attachment, EmailConnection, Message, OutboxItem, SubAccountEmailProvider, Thread
from sync_engine.domain import (
    Address,
    AuthRevokedError,
    DeliveryUncertain,
    PermanentSendError,
    ThrottledError,
)
from sync_engine.services.outbox import (
    MAX_ATTEMPTS,
    Abandon,
    AttemptSuperseded,
    DeliveryFacts,
    Final,
    GiveUp,
    RetryAfter,
    SendThroughMailbox,
    SendThroughRelay,
    Superseded,
    after_failure,
    outbox_status,
    plan_delivery,
)
from vocabulary import ConnectionStatus, MessageStatus, OutboxStatus, SenderRoute

SUB = uuid.uuid4()


def _mailbox(**overrides: object) -> EmailConnection:
    values: dict[str, object] = {"id": uuid.uuid4(), "sub_account_id": SUB, "address": "ann@biz.example",
                                 "display_name": "Ann", "is_current": True, "status": ConnectionStatus.ACTIVE,
                                 "token_ciphertext": "sealed"}
    return EmailConnection(**{**values, **overrides})


def _facts(route: SenderRoute, *, mailbox: EmailConnection | None = None, thread_connection: uuid.UUID | None = None,
           relay: SubAccountEmailProvider | None = None, parent: Message | None = None,
           from_email: str | None = "ann@biz.example") -> DeliveryFacts:
    thread = Thread(id=uuid.uuid4(), sub_account_id=SUB, connection_id=thread_connection, subject="Quote",
                    provider_thread_key="conv-1")
    message = Message(id=uuid.uuid4(), sub_account_id=SUB, thread_id=thread.id, subject="Quote", html=None,
                      text="Hello", from_email=from_email, from_name="Ann",
                      to_addresses=[{"email": "bo@client.example", "name": "Bo"}], cc_addresses=[],
                      bcc_addresses=[{"email": "audit@biz.example", "name": None}],
                      message_id_header="<ours@biz.example>", in_reply_to="<theirs@client.example>",
                      references="<a@x> <theirs@client.example>")
    item = OutboxItem(id=uuid.uuid4(), sub_account_id=SUB, message_id=message.id, route=route, attempts=1,
                      connection_id=mailbox.id if mailbox is not None else None)
    attachment = Attachment(filename="quote.pdf", content_type="application/pdf", content=b"%PDF")
    return DeliveryFacts(item, message, thread, [attachment], mailbox=mailbox, reply_parent=parent, relay=relay)


def test_a_message_or_thread_that_is_gone_is_abandoned() -> None:
    facts = _facts(SenderRoute.MAILBOX, mailbox=_mailbox())
    assert isinstance(plan_delivery(DeliveryFacts(facts.item, None, facts.thread)), Abandon)
    assert isinstance(plan_delivery(DeliveryFacts(facts.item, facts.message, None)), Abandon)


def test_a_relay_route_without_relay_gives_up() -> None:
    plan = plan_delivery(_facts(SenderRoute.SUB_ACCOUNT))
    assert plan == GiveUp("the sub-account's email provider was removed before sending")


def test_a_relay_send_keeps_the_queued_from_and_falls_back_to_the_relay_default() -> None:
    relay = SubAccountEmailProvider(from_email="news@relay.example", from_name="News")
    plan = plan_delivery(_facts(SenderRoute.SUB_ACCOUNT, relay=relay))
    assert isinstance(plan, SendThroughRelay)
    assert plan.relay is relay
    assert plan.outgoing.sender == Address("ann@biz.example", "Ann")
    assert plan.outgoing.reply_to_provider_id is None and plan.outgoing.thread_key is None
    plan = plan_delivery(_facts(SenderRoute.SUB_ACCOUNT, relay=relay, from_email=None))
    assert isinstance(plan, SendThroughRelay)
    assert plan.outgoing.sender.email == "news@relay.example"


@pytest.mark.parametrize("broken", [
    {"status": ConnectionStatus.DISCONNECTED},
    {"status": ConnectionStatus.REAUTH_REQUIRED},
    {"is_current": False},
    {"token_ciphertext": None},
])
def test_a_mailbox_that_cannot_send_gives_up(broken: dict[str, object]) -> None:
    plan = plan_delivery(_facts(SenderRoute.MAILBOX, mailbox=_mailbox(**broken)))
    assert plan == GiveUp("the mailbox was disconnected before the email could be sent")
    assert plan_delivery(_facts(SenderRoute.MAILBOX)) == plan  # no mailbox at all


def test_a_mailbox_send_replies_in_the_mailbox_thread_it_belongs_to() -> None:
    mailbox = _mailbox()
    parent = Message(id=uuid.uuid4(), provider_message_id="AAMk-parent")
    plan = plan_delivery(_facts(SenderRoute.MAILBOX, mailbox=mailbox, thread_connection=mailbox.id, parent=parent))
    assert isinstance(plan, SendThroughMailbox)
    assert plan.mailbox is mailbox
    out = plan.outgoing
    assert out.sender == Address("ann@biz.example", "Ann")
    assert out.message_id == "<ours@biz.example>"
    assert out.to == [Address("bo@client.example", "Bo")] and out.bcc == [Address("audit@biz.example", None)]
    assert out.in_reply_to == "<theirs@client.example>"
    assert out.references == ["<a@x>", "<theirs@client.example>"]
    assert out.reply_to_provider_id == "AAMk-parent"
    assert out.thread_key == "conv-1"
    assert [(a.filename, a.content) for a in out.attachments] == [("quote.pdf", b"%PDF")]
    assert plan.learns_thread_key is not None


def test_a_thread_of_another_mailbox_lends_neither_its_key_nor_learns_one() -> None:
    plan = plan_delivery(_facts(SenderRoute.MAILBOX, mailbox=_mailbox(), thread_connection=uuid.uuid4()))
    assert isinstance(plan, SendThroughMailbox)
    assert plan.outgoing.thread_key is None and plan.learns_thread_key is None


def test_the_message_itself_is_not_its_own_reply_target() -> None:
    facts = _facts(SenderRoute.MAILBOX, mailbox=_mailbox())
    assert facts.message is not None
    itself = Message(id=facts.message.id, provider_message_id="AAMk-self")
    plan = plan_delivery(DeliveryFacts(facts.item, facts.message, facts.thread, mailbox=facts.mailbox,
                                       reply_parent=itself))
    assert isinstance(plan, SendThroughMailbox)
    assert plan.outgoing.reply_to_provider_id is None


def test_a_message_without_message_id_gets_one_in_the_senders_domain() -> None:
    facts = _facts(SenderRoute.MAILBOX, mailbox=_mailbox())
    assert facts.message is not None
    facts.message.message_id_header = None
    plan = plan_delivery(facts)
    assert isinstance(plan, SendThroughMailbox)
    assert plan.outgoing.message_id.startswith("<") and plan.outgoing.message_id.endswith("@biz.example>")


def test_throttling_waits_for_the_provider() -> None:
    assert after_failure(ThrottledError(42.0), 3, via_relay=False) == RetryAfter(42.0, "throttled by the provider")


def test_transient_failures_back_off_then_give_up() -> None:
    assert after_failure(ConnectionError(), 1, via_relay=False) == RetryAfter(10.0, "ConnectionError")
    assert after_failure(TimeoutError(), 3, via_relay=True) == RetryAfter(40.0, "TimeoutError")
    assert after_failure(OSError(), 7, via_relay=False) == RetryAfter(600.0, "OSError")
    assert after_failure(OSError(), MAX_ATTEMPTS, via_relay=False) == Final("the provider could not be reached")


def test_refusals_are_final() -> None:
    assert after_failure(PermanentSendError("mailbox full"), 1, via_relay=False) == Final("mailbox full")
    assert after_failure(PermanentSendError(), 1, via_relay=True) == Final("refused by the provider")
    assert after_failure(ValueError("bad address"), 1, via_relay=False) == Final(
        "the email could not be built: bad address")


def test_a_superseded_attempt_leaves_the_item_alone() -> None:
    assert after_failure(AttemptSuperseded("x"), 2, via_relay=True) == Superseded()


def test_a_revoked_mailbox_fails_the_send_and_asks_for_a_new_sign_in() -> None:
    outcome = after_failure(AuthRevokedError(), 1, via_relay=False)
    assert outcome == Final("the mailbox must be connected again", reauth_required=True)
    # A relay has no sign-in: the same error there is an ordinary transient failure.
    assert isinstance(after_failure(AuthRevokedError(), 1, via_relay=True), RetryAfter)


def test_a_relay_whose_answer_was_lost_is_never_resent() -> None:
    outcome = after_failure(DeliveryUncertain(), 1, via_relay=True)
    assert isinstance(outcome, Final) and outcome.status is MessageStatus.UNCERTAIN
    assert outbox_status(outcome.status) is OutboxStatus.UNCERTAIN
    assert outbox_status(MessageStatus.FAILED) is OutboxStatus.FAILED
    assert isinstance(after_failure(DeliveryUncertain(), 1, via_relay=False), RetryAfter)
