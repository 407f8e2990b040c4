"""The sub-account's email provider (an SMTP relay): configure, test, load.

Saving tests the connection first (TLS, login): a relay that cannot be reached or
refuses the credentials is reported as a ``userError`` and nothing is stored. The
password is encrypted at rest like mailbox tokens and never leaves this module in
clear except towards the relay.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from db.models import SubAccountEmailProvider
from db.repositories import relays as repo
from sync_engine.crypto import SecretBox
from sync_engine.domain import RelayCheckFailed, SmtpRelayConfig
from sync_engine.providers.smtp import SmtpRelay
from sync_engine.rules.addresses import has_header_injection, is_valid_email
from sync_engine.rules.outbound import check_display_name
from sync_engine.services.collaborators import Clock, SessionFactory
from sync_engine.services.errors import ServiceError
from sync_engine.settings import LOOPBACK_HOSTS
from vocabulary import SmtpTlsMode

MAX_RATE_PER_MINUTE = 10_000
# Which input field a failed connection test points at.
_CHECK_FIELDS = {"AUTH_FAILED": "password", "TLS_FAILED": "tlsMode", "UNREACHABLE": "host", "REFUSED": "host"}


@dataclass(slots=True)
class RelaySettings:
    host: str
    port: int
    tls_mode: SmtpTlsMode
    from_email: str
    from_name: str | None = None
    username: str | None = None
    # None keeps the stored password (a settings screen never shows it, so it cannot resend it).
    password: str | None = None
    max_per_minute: int = 600


def _validate(s: RelaySettings) -> None:
    host = s.host.strip()
    if not host or len(host) > 253 or any(c.isspace() or not c.isprintable() for c in host) or "/" in host:
        raise ServiceError("INVALID_HOST", "the host must be a host name or an IP address", "host")
    if not 1 <= s.port <= 65535:
        raise ServiceError("INVALID_PORT", "the port must be between 1 and 65535", "port")
    if s.tls_mode is SmtpTlsMode.NONE and host.strip("[]").lower() not in LOOPBACK_HOSTS:
        raise ServiceError("TLS_REQUIRED", "a relay without TLS is accepted on this machine (loopback) only",
                           "tlsMode")
    if not is_valid_email(s.from_email):
        raise ServiceError("INVALID_EMAIL", "the default From is not a valid email address", "fromEmail")
    problem = check_display_name(s.from_name, "fromName")
    if problem:
        raise ServiceError(problem.code, problem.message, problem.field)
    if s.username is not None and (not s.username or has_header_injection(s.username) or len(s.username) > 320):
        raise ServiceError("INVALID", "the username must be one line of at most 320 characters", "username")
    if s.password is not None and ("\x00" in s.password or len(s.password) > 1024):
        raise ServiceError("INVALID", "the password must be at most 1,024 characters, without NUL", "password")
    if not 1 <= s.max_per_minute <= MAX_RATE_PER_MINUTE:
        raise ServiceError("INVALID", f"the rate must be between 1 and {MAX_RATE_PER_MINUTE} a minute",
                           "maxPerMinute")


def _same_login(existing: SubAccountEmailProvider, settings: RelaySettings) -> bool:
    return (existing.host.lower(), existing.port, existing.username) == (
        settings.host.strip().lower(), settings.port, settings.username)


@dataclass(frozen=True)
class RelaySettingsService:
    sessions: SessionFactory
    secrets: SecretBox
    clock: Clock
    ca_bundle: str | None  # trusted CAs for the relay's TLS (None: the system's)
    smtp_timeout: float  # seconds, for each SMTP step

    def open_relay(self, config: SmtpRelayConfig) -> SmtpRelay:
        return SmtpRelay(config, ca_bundle=self.ca_bundle, timeout=self.smtp_timeout)

    def config_of(self, row: SubAccountEmailProvider) -> SmtpRelayConfig:
        password = self.secrets.decrypt_json(row.password_ciphertext) if row.password_ciphertext else None
        return SmtpRelayConfig(host=row.host, port=row.port, tls_mode=SmtpTlsMode(row.tls_mode),
                               username=row.username, password=password, from_email=row.from_email,
                               from_name=row.from_name)

    async def configure_relay(self, sub_account_id: uuid.UUID, settings: RelaySettings) -> SubAccountEmailProvider:
        _validate(settings)
        async with self.sessions() as session:
            existing = await repo.relay_of(session, sub_account_id)
        password = settings.password
        if (password is None and existing is not None and existing.password_ciphertext
                and _same_login(existing, settings)):
            # Only towards the relay and login it was given for: pointing the settings at
            # another server must never hand it the stored password.
            password = self.secrets.decrypt_json(existing.password_ciphertext)
        if settings.username is not None and password is None:
            raise ServiceError("INVALID", "a password is required with a username (and again whenever the host, "
                               "port or username changes)", "password")
        config = SmtpRelayConfig(host=settings.host.strip(), port=settings.port, tls_mode=settings.tls_mode,
                                 username=settings.username, password=password if settings.username else None,
                                 from_email=settings.from_email.strip(), from_name=settings.from_name)
        try:
            await self.open_relay(config).check()
        except RelayCheckFailed as exc:
            raise ServiceError(exc.code, exc.message, _CHECK_FIELDS.get(exc.code, "host")) from None
        values = {
            "host": config.host, "port": config.port, "tls_mode": config.tls_mode.value, "username": config.username,
            "password_ciphertext": self.secrets.encrypt_json(config.password) if config.password is not None else None,
            "from_email": config.from_email, "from_name": config.from_name, "max_per_minute": settings.max_per_minute,
            "verified_at": self.clock(),
        }
        async with self.sessions.begin() as session:
            return await repo.save_relay(session, sub_account_id, values)

    async def relay_row(self, sub_account_id: uuid.UUID) -> SubAccountEmailProvider | None:
        async with self.sessions() as session:
            return await repo.relay_of(session, sub_account_id)
