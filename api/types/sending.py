"""The sender side as a settings screen shows it: routes, reasons, the sub-account's
email provider (an SMTP relay; its password is never readable) and sender previews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from api.types.enums import graphql_enum
from sync_engine.rules.sender import EXPLANATIONS
from vocabulary import EmailKind, RouteReason, SenderRoute, SmtpTlsMode

graphql_enum(EmailKind, description="What kind of CRM email it is; the kind decides the sender.", values={
    EmailKind.INDIVIDUAL: "One email written by a user to contacts.",
    EmailKind.BULK: "The same email to many contacts, one delivery each.",
    EmailKind.WORKFLOW: "Sent by a workflow or automation (partner apps).",
})

graphql_enum(SenderRoute, description="Which service an email leaves through.", values={
    SenderRoute.MAILBOX: "The user's connected mailbox: it shows in their Sent folder and the thread syncs.",
    SenderRoute.SUB_ACCOUNT: "The sub-account's email provider (SMTP relay): never in a mailbox, not synced.",
})

# In the same words as the rule's explanations (what ``resolveSender`` answers).
graphql_enum(RouteReason, description="Why an email takes its route.", values=EXPLANATIONS)

graphql_enum(SmtpTlsMode, description="How the connection to an SMTP relay is secured.", values={
    SmtpTlsMode.IMPLICIT: "TLS from the first byte (usually port 465).",
    SmtpTlsMode.STARTTLS: "Plain connection upgraded with STARTTLS, which is required (usually port 587).",
    SmtpTlsMode.NONE: "No TLS: accepted for a relay on this machine (loopback) only.",
})


@strawberry.type(description="The sub-account's email provider: an SMTP relay. The password is write-only.")
class SubAccountEmailProvider:
    host: str = strawberry.field(description="Relay host name or IP address.")
    port: int = strawberry.field(description="Relay port.")
    tls_mode: SmtpTlsMode = strawberry.field(description="How the connection is secured.")
    username: str | None = strawberry.field(description="SMTP login, if the relay needs one.")
    has_password: bool = strawberry.field(description="True when a password is stored (it is never returned).")
    from_email: str = strawberry.field(description="Default From address of emails sent through the relay.")
    from_name: str | None = strawberry.field(description="Default From display name.")
    max_per_minute: int = strawberry.field(description="Bulk deliveries through the relay are paced to this rate.")
    verified_at: datetime | None = strawberry.field(description="When the connection test last succeeded (on save).")


def provider_from_row(row: Any) -> SubAccountEmailProvider:
    return SubAccountEmailProvider(
        host=row.host, port=row.port, tls_mode=SmtpTlsMode(row.tls_mode), username=row.username,
        has_password=row.password_ciphertext is not None, from_email=row.from_email, from_name=row.from_name,
        max_per_minute=row.max_per_minute, verified_at=row.verified_at,
    )


@strawberry.type(description="One line of the sender rules: a kind of email, and where it goes for the viewer.")
class SenderRule:
    kind: EmailKind = strawberry.field(description="The kind of email.")
    route: SenderRoute = strawberry.field(description="Where it leaves through for the viewer now.")
    reason: RouteReason = strawberry.field(description="Why.")
    explanation: str = strawberry.field(description="The reason in words a settings screen can show.")
    synced: bool = strawberry.field(description="True when the conversation syncs with the mailbox.")
    available: bool = strawberry.field(
        description="False when that sender cannot send now (no sub-account email provider is configured)."
    )


@strawberry.type(description="The sub-account's effective sender rules and provider.")
class SenderDomainRules:
    provider: SubAccountEmailProvider | None = strawberry.field(
        description="The sub-account's email provider (null when none is configured)."
    )
    mailbox_address: str | None = strawberry.field(
        description="The viewer's connected mailbox that can send (null without one, or for API keys)."
    )
    rules: list[SenderRule] = strawberry.field(
        description="Individual email, bulk email with the mailbox's own From, bulk email with another or no "
        "From, and workflow email, each with its route for the viewer."
    )


@strawberry.type(description="Which sender an email would use, and why (nothing is sent).")
class SenderResolution:
    kind: EmailKind = strawberry.field(description="The kind of email asked about.")
    route: SenderRoute = strawberry.field(description="Where it would leave through.")
    reason: RouteReason = strawberry.field(description="Why.")
    explanation: str = strawberry.field(description="The reason in words.")
    synced: bool = strawberry.field(description="True when the conversation would sync with the mailbox.")
    available: bool = strawberry.field(description="False when that sender cannot send now.")
    from_email: str | None = strawberry.field(description="The From address it would carry.")
    from_name: str | None = strawberry.field(description="The From display name it would carry.")
