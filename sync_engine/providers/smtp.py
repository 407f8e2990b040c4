"""The sub-account-level email provider (DESIGN.md rule 10): an SMTP relay, over aiosmtplib.

One connection per operation, driven with aiosmtplib's low-level commands so each
step's failure can be told apart::

    connect (TLS from the first byte for IMPLICIT) -> EHLO
    -> STARTTLS + EHLO (STARTTLS mode: required; a server that does not offer it is refused)
    -> AUTH (when a username is configured) -> MAIL FROM -> RCPT TO ... -> DATA -> QUIT

``NONE`` never upgrades, even when the server offers STARTTLS: that mode is for
loopback relays, whose certificate (if any) we have no reason to trust.

Never twice. DATA is the irreversible step: once the content is on the wire the
server may take the message even if its reply never reaches us. So
``{"smtp": "data_sent"}`` is committed to the checkpoint before DATA, and a later
attempt that finds it raises ``DeliveryUncertain`` without connecting. A reply to
DATA (4xx/5xx) proves the message was not taken: the checkpoint then moves on to
``data_refused`` and a retry may send.

What ``send`` raises:

- ``ValueError`` — an unusable message (CR/LF injection, no recipient), before connecting.
- ``SmtpTemporaryError`` (a ``ProviderError``; the caller retries later) — nothing was
  delivered and trying again may work: a 4xx reply (to AUTH, MAIL, any RCPT or DATA),
  or the connection refused, lost or timed out before the content was sent. A 4xx to
  one recipient defers the whole message, so that nobody misses it.
- ``PermanentSendError`` — credentials refused, TLS impossible (STARTTLS not offered,
  certificate not trusted), a 5xx to MAIL or DATA or to every recipient. Recipients
  refused with 5xx while others were accepted do not stop the message: it goes to the
  others and a warning with counts (no addresses) is logged.
- ``DeliveryUncertain`` — the connection broke after the content was sent, or an
  earlier attempt got that far.

``check`` runs the same connection setup and raises ``RelayCheckFailed`` with a code
(UNREACHABLE, TLS_FAILED, AUTH_FAILED, REFUSED) and a message for the person who
configures the relay. Nothing here logs or words an error with the password
(``SmtpRelayConfig.__repr__`` hides it too), and bodies are never logged.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPDataError,
    SMTPException,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
)

from sync_engine.domain import (
    DeliveryUncertain,
    OutgoingMessage,
    PermanentSendError,
    ProviderError,
    RelayCheckFailed,
    SentMessage,
    SmtpRelayConfig,
    SmtpTlsMode,
)
from sync_engine.providers.base import SendCheckpoint
from sync_engine.providers.compose import build_mime

log = logging.getLogger(__name__)

UNREACHABLE, TLS_FAILED, AUTH_FAILED, REFUSED = "UNREACHABLE", "TLS_FAILED", "AUTH_FAILED", "REFUSED"
# Checkpoint values under "smtp".
DATA_SENT = "data_sent"  # the content may have reached the server: never send again
DATA_REFUSED = "data_refused"  # the server answered DATA with an error: it did not take the message


class SmtpTemporaryError(ProviderError):
    """Nothing was delivered and a later attempt may succeed (4xx, connection problems)."""


class SmtpRelay:
    """One sub-account's relay. ``check`` tests the configuration; ``send`` follows the
    ``MailboxClient.send`` contract. The envelope sender and the From header are the
    message's own ``sender`` (the caller puts the relay's ``from_email`` there when the
    sub-account's address is the one to use)."""

    def __init__(self, config: SmtpRelayConfig, *, ca_bundle: str | None = None, timeout: float = 30.0) -> None:
        self._config = config
        self._ca_bundle = ca_bundle
        self._timeout = timeout
        self._where = f"{config.host}:{config.port}"
        self._tls_context: ssl.SSLContext | None = None

    async def check(self) -> None:
        """Connect, secure, greet and authenticate as a send would, then QUIT."""
        async with self._session() as smtp:
            await _quit(smtp)

    async def send(self, message: OutgoingMessage, checkpoint: SendCheckpoint) -> SentMessage:
        if checkpoint.state.get("smtp") == DATA_SENT:
            raise DeliveryUncertain("an earlier attempt handed the message to the SMTP server; it may have been delivered")
        mime = build_mime(message)  # ValueError before connecting
        # Bcc recipients get the message through RCPT only: an SMTP server passes headers on as they are.
        del mime["Bcc"]
        content = mime.as_bytes()
        try:
            async with self._session() as smtp:
                refused = await self._envelope(smtp, message.sender.email, _recipients(message))
                await self._transfer(smtp, content, checkpoint, message.message_id)
                await _quit(smtp)
        except RelayCheckFailed as exc:
            raise _send_error(exc) from exc
        return SentMessage(provider_id=None, thread_key=None, message_id=message.message_id,
                           refused_recipients=tuple(refused))

    # -- connection setup: every failure is a RelayCheckFailed caused by the library's error

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            # A given bundle holds the public roots plus a local CA, so it replaces the defaults.
            self._tls_context = ssl.create_default_context(cafile=self._ca_bundle)
        return self._tls_context

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[aiosmtplib.SMTP]:
        """A connection ready for MAIL: TLS as the mode says, EHLO, AUTH."""
        mode = self._config.tls_mode
        smtp = aiosmtplib.SMTP(
            hostname=self._config.host,
            port=self._config.port,
            timeout=self._timeout,
            use_tls=mode is SmtpTlsMode.IMPLICIT,
            start_tls=False,  # upgraded below, only in STARTTLS mode: never opportunistically
            tls_context=None if mode is SmtpTlsMode.NONE else self._tls(),
        )
        try:
            await self._connect(smtp)
            await self._step(smtp.ehlo(), "EHLO")
            if mode is SmtpTlsMode.STARTTLS:
                await self._starttls(smtp)
                await self._step(smtp.ehlo(), "EHLO")
            if self._config.username:
                await self._login(smtp)
            yield smtp
        finally:
            smtp.close()

    async def _connect(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.connect()
        except SMTPConnectResponseError as exc:
            raise RelayCheckFailed(REFUSED, f"{self._where} greeted with an error: {_reply(exc)}") from exc
        except SMTPConnectTimeoutError as exc:
            hint = "" if smtp.use_tls else " (a port that expects TLS from the first byte needs implicit TLS)"
            raise RelayCheckFailed(UNREACHABLE, f"{self._where} did not answer within {self._timeout:g} s{hint}") from exc
        except SMTPConnectError as exc:
            if isinstance(exc.__cause__, ssl.SSLError):  # implicit TLS: the handshake is part of connecting
                hint = " (a port that starts in plain text needs STARTTLS)"
                raise self._tls_failed(exc.__cause__, hint) from exc.__cause__
            raise RelayCheckFailed(UNREACHABLE, f"could not connect to {self._where}: {exc.__cause__ or exc}") from exc

    async def _starttls(self, smtp: aiosmtplib.SMTP) -> None:
        if not smtp.supports_extension("starttls"):
            raise RelayCheckFailed(TLS_FAILED, f"{self._where} does not offer STARTTLS")
        try:
            await smtp.starttls()
        except ssl.SSLError as exc:
            raise self._tls_failed(exc) from exc
        except SMTPResponseException as exc:
            raise RelayCheckFailed(TLS_FAILED, f"{self._where} refused STARTTLS: {_reply(exc)}") from exc
        except (ConnectionError, TimeoutError) as exc:
            raise RelayCheckFailed(TLS_FAILED, f"the TLS handshake with {self._where} broke off: {exc}") from exc

    def _tls_failed(self, error: ssl.SSLError, hint: str = "") -> RelayCheckFailed:
        if isinstance(error, ssl.SSLCertVerificationError):
            return RelayCheckFailed(TLS_FAILED, f"the certificate of {self._where} is not trusted: {error.verify_message}")
        return RelayCheckFailed(TLS_FAILED, f"TLS with {self._where} failed: {error.reason or error}{hint}")

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        if not smtp.supports_extension("auth"):
            secured = smtp.get_transport_info("sslcontext") is not None
            hint = "" if secured else " without TLS (choose STARTTLS or implicit TLS)"
            raise RelayCheckFailed(AUTH_FAILED, f"{self._where} does not offer authentication{hint}")
        try:
            await smtp.login(self._config.username or "", self._config.password or "")
        except SMTPAuthenticationError as exc:
            raise RelayCheckFailed(AUTH_FAILED, f"the SMTP server refused the credentials ({_reply(exc)})") from exc
        except (ConnectionError, TimeoutError) as exc:
            raise RelayCheckFailed(UNREACHABLE, f"the connection to {self._where} was lost during AUTH: {exc}") from exc
        except SMTPException as exc:  # none of its mechanisms is one aiosmtplib speaks
            raise RelayCheckFailed(AUTH_FAILED, f"{self._where} offers no supported authentication method") from exc

    async def _step(self, command: Awaitable[Any], name: str) -> None:
        try:
            await command
        except SMTPResponseException as exc:
            raise RelayCheckFailed(REFUSED, f"{self._where} answered {name} with {_reply(exc)}") from exc
        except (ConnectionError, TimeoutError) as exc:
            raise RelayCheckFailed(UNREACHABLE, f"the connection to {self._where} was lost during {name}: {exc}") from exc

    # -- the transaction -----------------------------------------------------------------

    async def _envelope(self, smtp: aiosmtplib.SMTP, sender: str, recipients: Sequence[str]) -> list[str]:
        """MAIL and RCPT; returns the recipients refused for good (the others get the message)."""
        options, encoding = _address_encoding(smtp, [sender, *recipients])
        refused: list[SMTPRecipientRefused] = []
        try:
            await smtp.mail(sender, options=options, encoding=encoding)
            for recipient in recipients:
                try:
                    await smtp.rcpt(recipient, encoding=encoding)
                except SMTPRecipientRefused as exc:
                    if _is_temporary(exc):
                        raise
                    refused.append(exc)
        except SMTPSenderRefused as exc:
            raise _reply_error(exc, f"the SMTP server refused the sender {sender}") from exc
        except SMTPRecipientRefused as exc:
            raise _reply_error(exc, f"the SMTP server deferred the recipient {exc.recipient}") from exc
        except (ConnectionError, TimeoutError) as exc:
            raise SmtpTemporaryError(f"the connection to {self._where} was lost before the message was sent") from exc
        if len(refused) == len(recipients):
            listed = ", ".join(f"{exc.recipient} ({_reply(exc)})" for exc in refused)
            raise PermanentSendError(f"the SMTP server refused every recipient: {listed}")
        if refused:
            log.warning("the SMTP server refused %d of %d recipients; sending to the others", len(refused), len(recipients))
        return [exc.recipient for exc in refused]

    async def _transfer(self, smtp: aiosmtplib.SMTP, content: bytes, checkpoint: SendCheckpoint, message_id: str) -> None:
        await checkpoint.save({**checkpoint.state, "smtp": DATA_SENT, "message_id": message_id})
        try:
            await smtp.data(content)
        except SMTPDataError as exc:
            # The server answered: it did not take the message, so a later attempt may send it.
            await checkpoint.save({**checkpoint.state, "smtp": DATA_REFUSED, "message_id": message_id})
            raise _reply_error(exc, "the SMTP server refused the message") from exc
        except (ConnectionError, TimeoutError) as exc:
            raise DeliveryUncertain(
                f"the connection to {self._where} broke after the message was sent; it may have been delivered"
            ) from exc


def _recipients(message: OutgoingMessage) -> list[str]:
    """To, Cc and Bcc in order, each address once (compared case-insensitively)."""
    seen: dict[str, str] = {}
    for address in (*message.to, *message.cc, *message.bcc):
        seen.setdefault(address.normalized, address.email.strip())
    return list(seen.values())


def _address_encoding(smtp: aiosmtplib.SMTP, addresses: Sequence[str]) -> tuple[list[str], str]:
    """MAIL options and the encoding of envelope addresses: SMTPUTF8 only when one needs it."""
    if all(address.isascii() for address in addresses):
        return [], "ascii"
    if smtp.supports_extension("smtputf8"):
        return ["SMTPUTF8"], "utf-8"
    raise PermanentSendError("the SMTP server does not accept international email addresses")


def _reply(exc: SMTPResponseException) -> str:
    """The server's reply on one bounded line (it ends up in user-visible errors)."""
    return f"{exc.code} {' '.join(exc.message.split())}"[:200]


def _is_temporary(exc: BaseException) -> bool:
    if isinstance(exc, SMTPResponseException):
        return 400 <= exc.code < 500
    return isinstance(exc, (ConnectionError, TimeoutError))


def _reply_error(exc: SMTPResponseException, what: str) -> ProviderError:
    error = SmtpTemporaryError if _is_temporary(exc) else PermanentSendError
    return error(f"{what}: {_reply(exc)}")


def _send_error(failure: RelayCheckFailed) -> ProviderError:
    """A failed connection setup, as ``send`` reports it."""
    if failure.__cause__ is not None and _is_temporary(failure.__cause__):
        return SmtpTemporaryError(failure.message)
    if failure.code == AUTH_FAILED:
        return PermanentSendError("the SMTP server refused the credentials")
    if failure.code == UNREACHABLE:
        return SmtpTemporaryError(failure.message)
    return PermanentSendError(failure.message)


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    """Say goodbye; the outcome is already known, so a failing QUIT changes nothing."""
    try:
        await smtp.quit()
    except (SMTPException, OSError):
        pass
