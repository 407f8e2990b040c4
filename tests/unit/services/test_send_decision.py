"""A CRM send's pure decision: the checks that need the database's facts, the subject,
the reply headers and the thread; and the queued message it writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from db.models import Contact, EmailConnection, SubAccountEmailProvider, Thread
from sync_engine.rules.sender import decide_sender
from sync_engine.services.errors import ServiceError
from sync_engine.services.send import SendFacts, SendPlan, SendRequest, decide_send, new_message
from sync_engine.services.sender import ResolvedSender
from vocabulary import ConnectionStatus, EmailKind, MessageStatus, RouteReason, SenderRoute

SUB = uuid.uuid4()


def _relay() -> SubAccountEmailProvider:
    return SubAccountEmailProvider(from_email="crm@biz.example", from_name="Biz")


def _mailbox(status: ConnectionStatus = ConnectionStatus.ACTIVE) -> EmailConnection:
    return EmailConnection(id=uuid.uuid4(), address="ann@biz.example", display_name="Ann", status=status,
                           token_ciphertext="sealed")


def _through_mailbox() -> ResolvedSender:
    mailbox = _mailbox()
    return ResolvedSender(decide_sender(EmailKind.INDIVIDUAL, mailbox.address), mailbox, _relay())


def _contacts(*emails: str) -> dict[str, Contact]:
    return {e.lower(): Contact(id=uuid.uuid4(), email=e, email_normalized=e.lower()) for e in emails}


def _request(**overrides: object) -> SendRequest:
    values: dict[str, object] = {"subject": "Quote", "html": None, "text": "Hello", "to": [" Bo@Client.example"]}
    return SendRequest(**{**values, **overrides})  # type: ignore[arg-type]


def _error(request: SendRequest, facts: SendFacts) -> ServiceError:
    with pytest.raises(ServiceError) as err:
        decide_send(request, facts)
    return err.value


def test_a_new_thread_belongs_to_the_first_recipient() -> None:
    contacts = _contacts("bo@client.example", "cy@client.example")
    plan = decide_send(_request(cc=["cy@client.example"]), SendFacts(None, _through_mailbox(), contacts))
    assert plan == SendPlan("Quote", None, [], contacts["bo@client.example"].id)


def test_a_reply_refers_to_the_threads_last_message_and_keeps_its_subject() -> None:
    thread = Thread(id=uuid.uuid4(), subject="Quote")
    facts = SendFacts(thread, _through_mailbox(), _contacts("bo@client.example"),
                      parent_message_id="<p@client.example>", parent_references=["<a@x>"])
    plan = decide_send(_request(subject="  ", thread_id=thread.id), facts)
    assert plan == SendPlan("Re: Quote", "<p@client.example>", ["<a@x>", "<p@client.example>"], None)
    # A subject of its own is kept; a thread without any Message-ID yet has nothing to refer to.
    plan = decide_send(_request(subject="New terms", thread_id=thread.id),
                       SendFacts(thread, _through_mailbox(), _contacts("bo@client.example")))
    assert plan == SendPlan("New terms", None, [], None)


def test_an_unknown_thread_is_not_found_before_anything_else() -> None:
    stalled = ResolvedSender(decide_sender(EmailKind.INDIVIDUAL, None), None, None)
    err = _error(_request(thread_id=uuid.uuid4()), SendFacts(None, stalled, {}))
    assert (err.code, err.field) == ("NOT_FOUND", "threadId")


def test_without_any_sender_nothing_is_queued() -> None:
    no_sender = ResolvedSender(decide_sender(EmailKind.INDIVIDUAL, None), None, None)
    assert _error(_request(), SendFacts(None, no_sender, {})).code == "NO_SENDER"


def test_a_mailbox_waiting_for_sign_in_is_not_replaced_by_the_relay() -> None:
    waiting = ResolvedSender(decide_sender(EmailKind.INDIVIDUAL, None), None, _relay(),
                             stalled=_mailbox(ConnectionStatus.REAUTH_REQUIRED))
    err = _error(_request(), SendFacts(None, waiting, _contacts("bo@client.example")))
    assert err.code == "REAUTH_REQUIRED"


def test_every_recipient_must_be_a_contact_named_by_its_field() -> None:
    err = _error(_request(bcc=["eve@else.example"]), SendFacts(None, _through_mailbox(), _contacts("bo@client.example")))
    assert (err.code, err.field) == ("NOT_A_CONTACT", "bcc")
    assert "eve@else.example" in err.message


def test_the_queued_message_carries_route_reason_and_whole_seconds() -> None:
    sender = _through_mailbox()
    thread = Thread(id=uuid.uuid4(), sub_account_id=SUB)
    now = datetime(2024, 5, 1, 9, 30, 15, 987654, tzinfo=UTC)
    message = new_message(sender, EmailKind.INDIVIDUAL, thread=thread, message_id=uuid.uuid4(), subject="Quote",
                          html="<p>Hi</p><script>x()</script>", text=None, to=["bo@client.example"], now=now,
                          references=["<a@x>", "<b@x>"])
    assert message.sent_at == now.replace(microsecond=0)
    assert (message.route, message.route_reason, message.kind) == (
        SenderRoute.MAILBOX, RouteReason.INDIVIDUAL_FROM_MAILBOX, EmailKind.INDIVIDUAL)
    assert message.status is MessageStatus.QUEUED and message.connection_id == sender.mailbox.id  # type: ignore[union-attr]
    assert message.from_email == "ann@biz.example" and message.references == "<a@x> <b@x>"
    assert message.message_id_header is not None and message.message_id_header.endswith("@biz.example>")
    assert "script" not in (message.html or "")
