"""Which sender a CRM email uses, with what it needs to go out (DESIGN.md rule 10).

Loads the user's mailbox and the sub-account's relay and applies the pure rule
(``rules.sender.decide_sender``); the send services and ``resolveSender`` share it, so
the preview always says what a send would do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.utils import parseaddr

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EmailConnection, SubAccountEmailProvider
from db.repositories import connections, relays, tenancy
from sync_engine.rules.sender import SenderDecision, bare_address, decide_sender
from sync_engine.services.collaborators import SessionFactory
from sync_engine.services.errors import NotFound, ServiceError
from vocabulary import ConnectionStatus, EmailKind, RouteReason, SenderRoute


@dataclass(slots=True)
class ResolvedSender:
    decision: SenderDecision
    mailbox: EmailConnection | None  # the user's mailbox when it can send
    relay: SubAccountEmailProvider | None  # the sub-account's relay, when configured
    # The user's current mailbox when it cannot send now (a new sign-in is needed):
    # their email is not silently sent from elsewhere meanwhile.
    stalled: EmailConnection | None = None
    from_address: str | None = None  # a bulk email's From, as typed

    @property
    def waits_for_sign_in(self) -> bool:
        if self.stalled is None:
            return False
        reason = self.decision.reason
        return reason is RouteReason.INDIVIDUAL_NO_MAILBOX or (
            reason is RouteReason.BULK_NO_MAILBOX and bare_address(self.from_address) == bare_address(self.stalled.address))

    @property
    def available(self) -> bool:
        if self.waits_for_sign_in:
            return False
        return self.mailbox is not None if self.decision.route is SenderRoute.MAILBOX else self.relay is not None

    @property
    def from_email(self) -> str | None:
        if self.decision.route is SenderRoute.MAILBOX:
            return self.mailbox.address if self.mailbox else None
        if bare_address(self.from_address):  # a bulk email's own From, sent through the relay
            return bare_address(self.from_address)
        return self.relay.from_email if self.relay else None

    @property
    def from_name(self) -> str | None:
        if self.decision.route is SenderRoute.MAILBOX:
            return self.mailbox.display_name if self.mailbox else None
        typed_name = parseaddr(self.from_address or "")[0]
        if typed_name:
            return typed_name
        return self.relay.from_name if self.relay else None

    @property
    def connection_id(self) -> uuid.UUID | None:
        return self.mailbox.id if self.decision.route is SenderRoute.MAILBOX and self.mailbox else None

    def require_available(self) -> None:
        if self.waits_for_sign_in:
            raise ServiceError("REAUTH_REQUIRED", "your mailbox must be connected again before it can send this "
                               "email (startEmailConnection); nothing was sent")
        if not self.available:
            raise ServiceError("NO_SENDER", f"{self.decision.explanation} No sub-account email provider is "
                               "configured: an admin sets one up with configureSubAccountEmailProvider.")


def usable_mailbox(conn: EmailConnection | None) -> EmailConnection | None:
    """A mailbox that can send now (not disconnected, not waiting for a new sign-in)."""
    if conn is None or conn.status not in ConnectionStatus.LIVE or conn.token_ciphertext is None:
        return None
    return conn


@dataclass(frozen=True)
class SenderService:
    sessions: SessionFactory

    async def resolve_sender(self, session: AsyncSession, sub_account_id: uuid.UUID, user_id: uuid.UUID | None,
                             kind: EmailKind, from_address: str | None = None) -> ResolvedSender:
        """The sender, read in the caller's transaction (a send's: what it decides is what it records)."""
        mailbox = stalled = None
        if user_id is not None and kind is not EmailKind.WORKFLOW:
            current = await connections.current_connection(session, sub_account_id, user_id)
            mailbox = usable_mailbox(current)
            if current is not None and mailbox is None and current.status != ConnectionStatus.DISCONNECTED:
                stalled = current
        decision = decide_sender(kind, mailbox.address if mailbox else None, from_address)
        relay = await relays.relay_of(session, sub_account_id)
        return ResolvedSender(decision, mailbox, relay, stalled, from_address if kind is EmailKind.BULK else None)

    async def preview_sender(self, sub_account_id: uuid.UUID, user_id: uuid.UUID | None, kind: EmailKind,
                             from_address: str | None = None) -> ResolvedSender:
        """What a send of ``kind`` by ``user_id`` would do now (``resolveSender``)."""
        async with self.sessions() as session:
            if user_id is not None and not await tenancy.is_member(session, sub_account_id, user_id):
                raise NotFound("user", "userId")
            return await self.resolve_sender(session, sub_account_id, user_id, kind, from_address)

    async def sender_rules(self, sub_account_id: uuid.UUID, user_id: uuid.UUID | None
                           ) -> tuple[ResolvedSender, list[tuple[EmailKind, ResolvedSender]]]:
        """The effective rules for one user: individual email, bulk email from the mailbox's
        own address (when there is a mailbox), bulk email from anything else, workflow email.
        The first element is the individual decision (it carries the mailbox and the relay)."""
        async with self.sessions() as session:
            individual = await self.resolve_sender(session, sub_account_id, user_id, EmailKind.INDIVIDUAL)
            rules = [(EmailKind.INDIVIDUAL, individual)]
            if individual.mailbox is not None:
                rules.append((EmailKind.BULK, await self.resolve_sender(
                    session, sub_account_id, user_id, EmailKind.BULK, individual.mailbox.address)))
            rules.append((EmailKind.BULK, await self.resolve_sender(session, sub_account_id, user_id,
                                                                    EmailKind.BULK, None)))
            rules.append((EmailKind.WORKFLOW, await self.resolve_sender(session, sub_account_id, user_id,
                                                                        EmailKind.WORKFLOW)))
        return individual, rules
