"""Which service a CRM email leaves through (DESIGN.md rule 10). Pure.

- individual email: the user's connected mailbox (the thread syncs); without a usable
  mailbox, the sub-account provider (not synced);
- bulk email: the connected mailbox only when the bulk From is the user's connected
  address (case-insensitive, display names ignored); blank or any other From, the
  sub-account provider;
- workflow email: always the sub-account provider, never in a mailbox, never synced.

Every decision carries its reason, stored with the send and shown by ``resolveSender``.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr

from vocabulary import EmailKind as EmailKind
from vocabulary import Provider
from vocabulary import RouteReason as RouteReason
from vocabulary import SenderRoute as SenderRoute

# In the user's words: what a settings screen or a "why did it go this way" answer shows.
EXPLANATIONS: dict[RouteReason, str] = {
    RouteReason.INDIVIDUAL_FROM_MAILBOX: "Individual emails go out through the user's connected mailbox "
    "and the conversation syncs both ways.",
    RouteReason.INDIVIDUAL_NO_MAILBOX: "The user has no connected mailbox, so individual emails go out "
    "through the sub-account's email provider and do not sync.",
    RouteReason.BULK_FROM_IS_MAILBOX: "The bulk email's From is the user's connected address, so it goes "
    "out through that mailbox and syncs.",
    RouteReason.BULK_FROM_BLANK: "A bulk email without a From goes out through the sub-account's email "
    "provider and does not sync.",
    RouteReason.BULK_FROM_OTHER: "The bulk email's From is not the user's connected address, so it goes "
    "out through the sub-account's email provider and does not sync.",
    RouteReason.BULK_NO_MAILBOX: "The user has no connected mailbox, so bulk email goes out through the "
    "sub-account's email provider and does not sync.",
    RouteReason.WORKFLOW_ALWAYS_SUB_ACCOUNT: "Workflow and automation emails always go out through the "
    "sub-account's email provider; they are never in a mailbox and never sync.",
}


@dataclass(frozen=True, slots=True)
class SenderDecision:
    route: SenderRoute
    reason: RouteReason

    @property
    def synced(self) -> bool:
        return self.route is SenderRoute.MAILBOX

    @property
    def explanation(self) -> str:
        return EXPLANATIONS[self.reason]


def bare_address(value: str | None) -> str:
    """``"Ann <Ann@X.example>"`` -> ``"ann@x.example"``; blank -> ``""``."""
    if value is None or not value.strip():
        return ""
    _, email = parseaddr(value.strip())
    return (email or value).strip().lower()


def decide_sender(kind: EmailKind, mailbox_address: str | None, from_address: str | None = None) -> SenderDecision:
    """``mailbox_address``: the user's connected mailbox when it can send (None: no usable
    mailbox); ``from_address``: the bulk email's From, as typed (display name allowed)."""
    if kind is EmailKind.WORKFLOW:
        return SenderDecision(SenderRoute.SUB_ACCOUNT, RouteReason.WORKFLOW_ALWAYS_SUB_ACCOUNT)
    if kind is EmailKind.INDIVIDUAL:
        if mailbox_address is None:
            return SenderDecision(SenderRoute.SUB_ACCOUNT, RouteReason.INDIVIDUAL_NO_MAILBOX)
        return SenderDecision(SenderRoute.MAILBOX, RouteReason.INDIVIDUAL_FROM_MAILBOX)
    wanted = bare_address(from_address)
    if not wanted:
        return SenderDecision(SenderRoute.SUB_ACCOUNT, RouteReason.BULK_FROM_BLANK)
    if mailbox_address is None:
        return SenderDecision(SenderRoute.SUB_ACCOUNT, RouteReason.BULK_NO_MAILBOX)
    if wanted == bare_address(mailbox_address):
        return SenderDecision(SenderRoute.MAILBOX, RouteReason.BULK_FROM_IS_MAILBOX)
    return SenderDecision(SenderRoute.SUB_ACCOUNT, RouteReason.BULK_FROM_OTHER)


def route_for(kind: EmailKind, connected_address: str | None, bulk_from: str | None = None) -> SenderRoute:
    return decide_sender(kind, connected_address, bulk_from).route


# Pacing of bulk deliveries per route, in messages per minute. Mailboxes: Exchange Online
# allows 30 messages a minute per mailbox; Gmail's quota (100 units a send, 15,000 a
# minute) allows 150, and Google advises staying well below. The relay's own limit is
# configured with it.
MAILBOX_SEND_RATE_PER_MINUTE: dict[str, int] = {Provider.OUTLOOK: 30, Provider.GMAIL: 60}
