"""The sender side: what kind of email, which service it leaves through and why
(DESIGN.md rule 10), and the progress of outbox items and bulk sends."""

from __future__ import annotations

import enum


class EmailKind(enum.StrEnum):
    """What kind of CRM email it is; the kind decides the sender (``messages.kind``)."""

    INDIVIDUAL = "individual"
    BULK = "bulk"
    WORKFLOW = "workflow"


class SenderRoute(enum.StrEnum):
    """Which service an email leaves through (``messages.route``, ``outbox.route``, ``bulk_sends.route``)."""

    MAILBOX = "mailbox"  # the user's connected mailbox; the thread syncs
    SUB_ACCOUNT = "sub_account"  # the sub-account's SMTP relay; never synced


class RouteReason(enum.StrEnum):
    """Why an email takes its route (``route_reason`` of messages and bulk sends); the
    rule that decides it and the words shown to users are in ``sync_engine.rules.sender``."""

    INDIVIDUAL_FROM_MAILBOX = "individual_from_mailbox"
    INDIVIDUAL_NO_MAILBOX = "individual_no_mailbox"
    BULK_FROM_IS_MAILBOX = "bulk_from_is_mailbox"
    BULK_FROM_BLANK = "bulk_from_blank"
    BULK_FROM_OTHER = "bulk_from_other"
    BULK_NO_MAILBOX = "bulk_no_mailbox"
    WORKFLOW_ALWAYS_SUB_ACCOUNT = "workflow_always_sub_account"


class SmtpTlsMode(enum.StrEnum):
    """How a connection to the sub-account's SMTP relay is secured (``sub_account_email_providers.tls_mode``)."""

    IMPLICIT = "implicit"  # TLS from the first byte (usually port 465)
    STARTTLS = "starttls"  # plain connect, then STARTTLS is required (usually 587)
    NONE = "none"  # no TLS at all: accepted for loopback relays only


class OutboxStatus(enum.StrEnum):
    """State of a CRM send's outbox item (``outbox.status``)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    # Handed to an SMTP relay whose answer was lost: not resent (at most once).
    UNCERTAIN = "uncertain"


class BulkSendStatus(enum.StrEnum):
    """Progress of a bulk email (``bulk_sends.status``)."""

    QUEUED = "queued"  # recorded; no delivery has finished yet
    SENDING = "sending"
    COMPLETED = "completed"  # every delivery has its final result
