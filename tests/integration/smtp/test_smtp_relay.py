"""``SmtpRelay`` against the sandbox's SMTP catcher over real sockets: the connection
check and its failure codes, what a send delivers (envelope, headers, bodies,
attachments), the never-twice checkpoint, and how SMTP errors surface."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import logging
import socket
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import certifi
import pytest
from aiosmtpd.smtp import SMTP

from sync_engine.domain import (
    Address,
    DeliveryUncertain,
    OutgoingAttachment,
    OutgoingMessage,
    PermanentSendError,
    RelayCheckFailed,
    SentMessage,
    SmtpTlsMode,
)
from sync_engine.providers.smtp import SmtpTemporaryError
from tests.support.adapters import Checkpoint

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n.line starting with a dot\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(reversed(range(256))) * 10


def outgoing(**overrides: Any) -> OutgoingMessage:
    fields: dict[str, Any] = dict(
        message_id="<crm-42@emailsync.test>",
        sender=Address("olivia@demo-realty.example", "Olivia Agent"),
        to=[Address("ann@client.example", "Ann Client")],
        subject="Quote",
        text="Hi Ann",
        html=None,
    )
    fields.update(overrides)
    return OutgoingMessage(**fields)


def parsed(caught: dict[str, Any]) -> EmailMessage:
    return email.message_from_bytes(base64.b64decode(caught["raw_base64"]), policy=email.policy.default)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
async def port_without_starttls() -> AsyncIterator[int]:
    """A plain SMTP server that does not offer STARTTLS."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(object(), hostname="localhost", loop=loop), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


# -- check ---------------------------------------------------------------------------


@pytest.mark.parametrize("tls_mode", list(SmtpTlsMode))
async def test_check_succeeds_in_each_tls_mode(relay, catcher, tls_mode: SmtpTlsMode) -> None:
    if tls_mode is SmtpTlsMode.NONE:
        await catcher.configure(smtp_auth_without_tls=True)
    await relay(tls_mode).check()


async def test_check_wrong_password_is_auth_failed(relay, catcher) -> None:
    with pytest.raises(RelayCheckFailed) as failed:
        await relay(password="not-the-password").check()
    assert failed.value.code == "AUTH_FAILED"
    assert "refused the credentials" in failed.value.message and "not-the-password" not in str(failed.value)


async def test_check_credentials_without_tls_offer_no_auth(relay, catcher) -> None:
    # The catcher, like submission servers, offers AUTH only over TLS.
    with pytest.raises(RelayCheckFailed) as failed:
        await relay(SmtpTlsMode.NONE).check()
    assert failed.value.code == "AUTH_FAILED" and "without TLS" in failed.value.message


async def test_check_implicit_tls_to_a_plain_port_is_tls_failed(relay, catcher, sandbox) -> None:
    with pytest.raises(RelayCheckFailed) as failed:
        await relay(SmtpTlsMode.IMPLICIT, port=sandbox.smtp_port).check()
    assert failed.value.code == "TLS_FAILED"


async def test_check_starttls_with_an_untrusted_ca_is_tls_failed(relay, catcher) -> None:
    with pytest.raises(RelayCheckFailed) as failed:
        await relay(ca_bundle=certifi.where()).check()  # public roots only, not the sandbox CA
    assert failed.value.code == "TLS_FAILED" and "not trusted" in failed.value.message


async def test_check_starttls_not_offered_is_tls_failed(relay, port_without_starttls: int) -> None:
    with pytest.raises(RelayCheckFailed) as failed:
        await relay(port=port_without_starttls, username=None).check()
    assert failed.value.code == "TLS_FAILED" and "does not offer STARTTLS" in failed.value.message


async def test_none_never_upgrades_even_when_starttls_is_offered(relay, catcher) -> None:
    await catcher.configure(smtp_auth_without_tls=True)
    await relay(SmtpTlsMode.NONE).send(outgoing(), Checkpoint())
    (caught,) = await catcher.messages(1)
    assert caught["tls"] is False


async def test_check_closed_port_is_unreachable(relay) -> None:
    with pytest.raises(RelayCheckFailed) as failed:
        await relay(port=closed_port()).check()
    assert failed.value.code == "UNREACHABLE"


# -- send ----------------------------------------------------------------------------


@pytest.mark.parametrize("tls_mode", list(SmtpTlsMode))
async def test_send_in_each_tls_mode(relay, catcher, sandbox, tls_mode: SmtpTlsMode) -> None:
    if tls_mode is SmtpTlsMode.NONE:
        await catcher.configure(smtp_auth_without_tls=True)
    sent = await relay(tls_mode).send(outgoing(), Checkpoint())
    assert sent == SentMessage(provider_id=None, thread_key=None, message_id="<crm-42@emailsync.test>")
    (caught,) = await catcher.messages(1)
    assert caught["listener"] == ("implicit" if tls_mode is SmtpTlsMode.IMPLICIT else "starttls")
    assert caught["tls"] is (tls_mode is not SmtpTlsMode.NONE)
    assert caught["username"] == sandbox.smtp_credentials.username


async def test_send_delivers_exactly_what_was_asked(relay, catcher) -> None:
    text = "Hi Ann,\n.a line that starts with a dot\nsee attached.\n"
    message = outgoing(
        to=[Address("ann@client.example", "Ann Client")],
        cc=[Address("bob@client.example"), Address("ANN@Client.example")],  # Ann again, other spelling
        bcc=[Address("audit@crm.example", "Audit")],
        subject="Re: Angebot für Grüße 👋",
        text=text,
        html="<p>Hi Ann,</p><p>see attached.</p>",
        in_reply_to="<ann-1@client.example>",
        references=["<crm-41@emailsync.test>", "<ann-1@client.example>"],
        attachments=[OutgoingAttachment("Exposé.pdf", "application/pdf", PDF), OutgoingAttachment("photo.png", "image/png", PNG)],
    )
    await relay().send(message, Checkpoint())

    (caught,) = await catcher.messages(1)
    assert caught["envelope"] == {
        "mail_from": "olivia@demo-realty.example",
        "rcpt_tos": ["ann@client.example", "bob@client.example", "audit@crm.example"],
    }
    raw = base64.b64decode(caught["raw_base64"])
    assert b"audit@crm.example" not in raw  # Bcc: delivered, never shown
    mime = parsed(caught)
    assert mime["Bcc"] is None
    assert mime["From"] == "Olivia Agent <olivia@demo-realty.example>"
    assert mime["To"] == "Ann Client <ann@client.example>"
    assert [a.addr_spec for a in mime["Cc"].addresses] == ["bob@client.example", "ANN@Client.example"]
    assert mime["Subject"] == "Re: Angebot für Grüße 👋"
    assert mime["Message-ID"] == "<crm-42@emailsync.test>"
    assert mime["In-Reply-To"] == "<ann-1@client.example>"
    assert mime["References"].split() == ["<crm-41@emailsync.test>", "<ann-1@client.example>"]
    assert mime.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert mime.get_body(("html",)).get_content().strip() == "<p>Hi Ann,</p><p>see attached.</p>"
    attachments = {part.get_filename(): (part.get_content_type(), part.get_content()) for part in mime.iter_attachments()}
    assert attachments == {"Exposé.pdf": ("application/pdf", PDF), "photo.png": ("image/png", PNG)}


async def test_the_checkpoint_is_committed_before_data(relay, catcher) -> None:
    # The worker dies right after the commit that precedes DATA: nothing went out...
    checkpoint = Checkpoint(fail_on_save=1)
    with pytest.raises(RuntimeError):
        await relay().send(outgoing(), checkpoint)
    assert checkpoint.saves == [{"smtp": "data_sent", "message_id": "<crm-42@emailsync.test>"}]
    assert await catcher.messages() == []
    # ...and the retry does not guess: it cannot know how far the attempt got.
    with pytest.raises(DeliveryUncertain):
        await relay().send(outgoing(), checkpoint)
    assert await catcher.messages() == []


async def test_a_sender_killed_after_the_server_took_the_message_never_sends_twice(relay, catcher) -> None:
    await catcher.fault(hold_seconds=60)  # the server stores the message, then delays its 250
    checkpoint = Checkpoint()
    sending = asyncio.create_task(relay().send(outgoing(), checkpoint))
    assert len(await catcher.messages(1)) == 1
    assert not sending.done()
    sending.cancel()  # the worker is killed before it learns the outcome
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert checkpoint.state["smtp"] == "data_sent"

    await catcher.client.delete("/smtp/faults")
    # The retry raises without connecting: this relay points at a closed port.
    with pytest.raises(DeliveryUncertain):
        await relay(port=closed_port()).send(outgoing(), checkpoint)
    with pytest.raises(DeliveryUncertain):
        await relay().send(outgoing(), checkpoint)
    assert len(await catcher.messages()) == 1


async def test_no_answer_after_data_is_uncertain(relay, catcher) -> None:
    await catcher.fault(hold_seconds=30)
    with pytest.raises(DeliveryUncertain):
        await relay(timeout=0.5).send(outgoing(), Checkpoint())
    assert len(await catcher.messages(1)) == 1


async def test_a_451_to_data_is_retryable_and_the_retry_sends(relay, catcher) -> None:
    await catcher.fault(temp_fail_data=1)
    checkpoint = Checkpoint()
    with pytest.raises(SmtpTemporaryError) as deferred:
        await relay().send(outgoing(), checkpoint)
    assert not isinstance(deferred.value, PermanentSendError) and "451" in str(deferred.value)
    assert checkpoint.state["smtp"] == "data_refused"  # answered: the server did not take it
    assert await catcher.messages() == []
    await relay().send(outgoing(), checkpoint)
    assert len(await catcher.messages(1)) == 1


async def test_a_550_to_every_recipient_is_permanent(relay, catcher) -> None:
    await catcher.fault(reject_rcpt="@client\\.example$")
    checkpoint = Checkpoint()
    message = outgoing(cc=[Address("bob@client.example")])
    with pytest.raises(PermanentSendError) as refused:
        await relay().send(message, checkpoint)
    assert "ann@client.example" in str(refused.value) and "bob@client.example" in str(refused.value)
    assert "550" in str(refused.value)
    assert checkpoint.saves == []  # never got to DATA
    assert await catcher.messages() == []


async def test_refused_recipients_do_not_stop_the_others(relay, catcher, caplog: pytest.LogCaptureFixture) -> None:
    await catcher.fault(reject_rcpt="^gone@")
    message = outgoing(cc=[Address("gone@client.example")], bcc=[Address("audit@crm.example")])
    with caplog.at_level(logging.WARNING, logger="sync_engine.providers.smtp"):
        sent = await relay().send(message, Checkpoint())
    assert sent.refused_recipients == ("gone@client.example",)  # the outbox records them on the message
    (caught,) = await catcher.messages(1)
    assert caught["envelope"]["rcpt_tos"] == ["ann@client.example", "audit@crm.example"]
    assert "1 of 3 recipients" in caplog.text and "gone@" not in caplog.text


async def test_refused_credentials_are_permanent(relay, catcher) -> None:
    with pytest.raises(PermanentSendError) as refused:
        await relay(password="not-the-password").send(outgoing(), Checkpoint())
    assert str(refused.value) == "the SMTP server refused the credentials"
    assert await catcher.messages() == []


async def test_an_unreachable_relay_is_retryable(relay) -> None:
    checkpoint = Checkpoint()
    with pytest.raises(SmtpTemporaryError):
        await relay(port=closed_port()).send(outgoing(), checkpoint)
    assert checkpoint.saves == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Quote\r\nBcc: victim@example.com"},
        {"sender": Address("olivia@demo-realty.example", "Olivia\r\nBcc: victim@example.com")},
        {"to": [Address("ann@client.example", "Ann\nX-Evil: 1")]},
    ],
)
async def test_header_injection_is_refused_before_connecting(relay, overrides: dict[str, Any]) -> None:
    checkpoint = Checkpoint()
    # A relay that would fail differently (SmtpTemporaryError) if it tried to connect.
    with pytest.raises(ValueError):
        await relay(port=closed_port()).send(outgoing(**overrides), checkpoint)
    assert checkpoint.saves == []
