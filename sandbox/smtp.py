"""An SMTP catcher: the stand-in for the relay a sub-account configures as its
email provider, built on aiosmtpd.

It runs on the sandbox server's event loop, beside the HTTPS app, so the control
API reads what was caught without locks. Two listeners share one catcher:

- ``starttls``: plain SMTP that offers STARTTLS (what port 587 does in real life);
- ``implicit``: TLS from the first byte (port 465).

Both present the sandbox CA's certificate for 127.0.0.1/localhost. AUTH (PLAIN and
LOGIN) is checked against the catcher's credentials and required before MAIL
(setting ``smtp_auth_required``). On the ``starttls`` listener AUTH is offered only
once TLS is on, as real submission servers do, unless ``smtp_auth_without_tls`` is
set: that lets a relay configured without TLS be exercised on loopback. Both
settings live at ``/_sandbox/config``.

Every accepted message is kept with its envelope, its raw bytes, the listener,
whether TLS was active and who authenticated. Faults make the relay misbehave as
real ones do: other credentials, ``451`` to the next DATA commands, ``550`` to
matching recipients, and a *hold* that stores the message and only then delays the
``250`` reply, so a test can stop the sender after the server took the message but
before the sender learned it.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import itertools
import logging
import re
import socket
import ssl
import weakref
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from typing import Any, NamedTuple

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox import ids
from sandbox.context import Sandbox, SandboxConfig
from sandbox.control import ControlError, _json

STARTTLS, IMPLICIT = "starttls", "implicit"
MAX_KEPT_MESSAGES = 10_000
# Headers summarised in the control API's listing (JSON key -> header name).
SUMMARY_HEADERS = {
    "from": "From", "to": "To", "cc": "Cc", "bcc": "Bcc", "subject": "Subject",
    "message_id": "Message-ID", "in_reply_to": "In-Reply-To", "references": "References",
}


class _HideLoginDataNotice(logging.Filter):
    """aiosmtpd 1.4 warns about its own deprecated ``Session.login_data`` on every
    successful AUTH; nothing here uses it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_HideLoginDataNotice())


class SmtpCredentials(NamedTuple):
    username: str
    password: str


# Fixed so the demo and the documentation can name them; tests change them with a fault.
DEFAULT_CREDENTIALS = SmtpCredentials("relay@sandbox.test", "sandbox-relay-password")


@dataclass
class SmtpConfig:
    """The catcher's settings; served and patched with the others at /_sandbox/config."""

    smtp_auth_required: bool = True
    # Offer AUTH on the starttls listener before STARTTLS (a relay used without TLS).
    smtp_auth_without_tls: bool = False

    update = SandboxConfig.update
    to_dict = SandboxConfig.to_dict


@dataclass
class SmtpFaults:
    credentials: SmtpCredentials = DEFAULT_CREDENTIALS
    temp_fail_data: int = 0  # answer 451 to this many more DATA commands
    reject_rcpt: re.Pattern[str] | None = None  # 550 to RCPT addresses it matches
    hold_seconds: float = 0.0  # delay of the 250 reply to DATA, after storing

    def to_json(self) -> dict[str, Any]:
        return {
            "hold_seconds": self.hold_seconds,
            "temp_fail_data": self.temp_fail_data,
            "reject_rcpt": self.reject_rcpt.pattern if self.reject_rcpt else None,
            "username": self.credentials.username,
        }


@dataclass
class CaughtMessage:
    seq: int
    listener: str
    tls: bool
    username: str | None
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(self.raw)

        def header(name: str) -> str | None:
            value = headers.get(name)
            return None if value is None else str(value)

        return {
            "seq": self.seq,
            "received_at": ids.iso_z_precise(self.received_at),
            "listener": self.listener,
            "tls": self.tls,
            "username": self.username,
            "envelope": {"mail_from": self.mail_from, "rcpt_tos": self.rcpt_tos},
            "headers": {key: header(name) for key, name in SUMMARY_HEADERS.items()},
            "size": len(self.raw),
            "raw_base64": base64.b64encode(self.raw).decode("ascii"),
        }


class SmtpCatcher:
    def __init__(self) -> None:
        self.config = SmtpConfig()
        self.faults = SmtpFaults()
        self.messages: deque[CaughtMessage] = deque(maxlen=MAX_KEPT_MESSAGES)
        self._seq = itertools.count(1)
        self._sockets: dict[str, socket.socket] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._tls: ssl.SSLContext | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._arrived = asyncio.Event()  # replaced by a fresh one after each message

    # -- state ----------------------------------------------------------------
    @property
    def credentials(self) -> SmtpCredentials:
        return self.faults.credentials

    def address(self, listener: str) -> tuple[str, int] | None:
        return self._addresses.get(listener)

    def port(self, listener: str) -> int | None:
        address = self.address(listener)
        return address[1] if address is not None else None

    def clear_faults(self) -> None:
        self.faults = SmtpFaults()

    def reset(self) -> None:
        self.config.update(SmtpConfig().to_dict())
        self.clear_faults()
        self.messages.clear()

    def record(self, listener: str, server: SMTP, session: Session, envelope: Envelope) -> CaughtMessage:
        transport = server.transport
        caught = CaughtMessage(
            seq=next(self._seq),
            listener=listener,
            tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
            username=session.auth_data if session.authenticated else None,
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            raw=bytes(envelope.original_content or b""),
        )
        self.messages.append(caught)
        self._arrived.set()
        self._arrived = asyncio.Event()
        return caught

    def caught(self, rcpt: str | None = None) -> list[CaughtMessage]:
        wanted = (rcpt or "").strip().lower()
        return [m for m in self.messages if not wanted or wanted in (r.lower() for r in m.rcpt_tos)]

    async def wait_for(self, count: int, rcpt: str | None, timeout: float) -> list[CaughtMessage]:
        """The caught messages (for ``rcpt``) once there are ``count``, or when ``timeout`` is up."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found := self.caught(rcpt)) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return found

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        expected = self.faults.credentials
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        # Both compared, always: the answer takes as long whichever part is wrong.
        ok = hmac.compare_digest(data.login, expected.username.encode()) & hmac.compare_digest(
            data.password, expected.password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=expected.username if ok else None)

    # -- listeners --------------------------------------------------------------
    def listen_on(self, sockets: dict[str, socket.socket], *, cert_file: str, key_file: str) -> None:
        """Adopt bound sockets (``starttls``/``implicit``); ``start`` serves them."""
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(cert_file, key_file)
        self._sockets = dict(sockets)
        self._addresses = {name: sock.getsockname()[:2] for name, sock in sockets.items()}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for listener, sock in self._sockets.items():
            factory = functools.partial(self._connection, listener, loop)
            tls = self._tls if listener == IMPLICIT else None
            self._servers.append(await loop.create_server(factory, sock=sock, ssl=tls))

    def _connection(self, listener: str, loop: asyncio.AbstractEventLoop) -> SMTP:
        # One aiosmtpd protocol per connection: settings changed at /_sandbox/config
        # apply to the next connection.
        offers_starttls = listener == STARTTLS
        protocol = SMTP(
            _Hooks(self, listener),
            hostname="localhost",
            tls_context=self._tls if offers_starttls else None,
            # aiosmtpd only counts STARTTLS as TLS; the implicit listener is TLS throughout.
            auth_require_tls=offers_starttls and not self.config.smtp_auth_without_tls,
            authenticator=self._authenticate,
            enable_SMTPUTF8=True,
            loop=loop,
        )
        self._connections.add(protocol)
        return protocol

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for protocol in list(self._connections):  # held replies must not keep the loop alive
            if protocol.transport is not None:
                protocol.transport.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def release(self) -> None:
        """Close the sockets (also those never served, when the app did not start)."""
        for sock in self._sockets.values():
            sock.close()


class _Hooks:
    """aiosmtpd's handler for one listener: the catcher's rules at each step."""

    def __init__(self, catcher: SmtpCatcher, listener: str) -> None:
        self.catcher = catcher
        self.listener = listener

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        # Checked here rather than with aiosmtpd's auth_required, so the setting can change at run time.
        if self.catcher.config.smtp_auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        pattern = self.catcher.faults.reject_rcpt
        if pattern is not None and pattern.search(address):
            return "550 5.1.1 Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        faults = self.catcher.faults
        if faults.temp_fail_data > 0:
            faults.temp_fail_data -= 1
            return "451 4.3.0 Temporary failure, try again later"
        caught = self.catcher.record(self.listener, server, session, envelope)
        if faults.hold_seconds > 0:
            await asyncio.sleep(faults.hold_seconds)
        return f"250 2.0.0 OK: queued as {caught.seq}"


# -- control API --------------------------------------------------------------------


def _parse_faults(data: dict[str, Any], faults: SmtpFaults) -> None:
    unknown = sorted(set(data) - {"hold_seconds", "temp_fail_data", "reject_rcpt", "auth"})
    if unknown:
        raise ControlError(400, f"unknown SMTP faults: {unknown}")
    try:
        if "hold_seconds" in data:
            faults.hold_seconds = max(0.0, float(data["hold_seconds"]))
        if "temp_fail_data" in data:
            faults.temp_fail_data = max(0, int(data["temp_fail_data"]))
    except (TypeError, ValueError):
        raise ControlError(400, "hold_seconds and temp_fail_data must be numbers") from None
    if "reject_rcpt" in data:
        try:
            faults.reject_rcpt = re.compile(str(data["reject_rcpt"]), re.IGNORECASE) if data["reject_rcpt"] else None
        except re.error:
            raise ControlError(400, "reject_rcpt must be a regular expression") from None
    if "auth" in data:
        auth = data["auth"]
        if not (isinstance(auth, dict) and auth.get("username") and auth.get("password")):
            raise ControlError(400, "auth needs username and password")
        faults.credentials = SmtpCredentials(str(auth["username"]), str(auth["password"]))


def control_routes(catcher: SmtpCatcher) -> list[tuple[str, Any, list[str]]]:
    async def describe(request: Request) -> Response:
        listeners = [
            {"name": name, "host": address[0], "port": address[1]}
            for name in (STARTTLS, IMPLICIT)
            if (address := catcher.address(name)) is not None
        ]
        return JSONResponse({
            "smtp_port": catcher.port(STARTTLS),
            "smtps_port": catcher.port(IMPLICIT),
            "username": catcher.credentials.username,
            "listeners": listeners,
            "auth_required": catcher.config.smtp_auth_required,
            "auth_without_tls": catcher.config.smtp_auth_without_tls,
            "faults": catcher.faults.to_json(),
        })

    async def list_messages(request: Request) -> Response:
        query = request.query_params
        try:
            count, timeout = int(query.get("wait_for", 0)), min(float(query.get("timeout", 10)), 60.0)
        except ValueError:
            raise ControlError(400, "wait_for and timeout must be numbers") from None
        caught = await catcher.wait_for(count, query.get("rcpt"), timeout)
        return JSONResponse([m.to_json() for m in caught])

    async def clear_messages(request: Request) -> Response:
        catcher.messages.clear()
        return Response(status_code=204)

    async def add_faults(request: Request) -> Response:
        _parse_faults(await _json(request), catcher.faults)
        return JSONResponse(catcher.faults.to_json())

    async def clear_faults(request: Request) -> Response:
        catcher.clear_faults()
        return Response(status_code=204)

    return [
        ("/_sandbox/smtp", describe, ["GET"]),
        ("/_sandbox/smtp/messages", list_messages, ["GET"]),
        ("/_sandbox/smtp/messages", clear_messages, ["DELETE"]),
        ("/_sandbox/smtp/faults", add_faults, ["POST"]),
        ("/_sandbox/smtp/faults", clear_faults, ["DELETE"]),
    ]


def install(sandbox: Sandbox) -> list[tuple[str, Any, list[str]]]:
    """Create the catcher on the sandbox and return its control routes. Clearing the
    sandbox's faults clears the catcher's too; a reset also drops the caught mail."""
    catcher = SmtpCatcher()
    sandbox.extensions["smtp"] = catcher
    sandbox.extensions.setdefault("config_sections", []).append(catcher.config)
    sandbox.faults.on_clear(catcher.clear_faults)
    sandbox.on_reset(catcher.reset)
    return control_routes(catcher)


def smtp_catcher(sandbox: Sandbox) -> SmtpCatcher:
    return sandbox.extensions["smtp"]
