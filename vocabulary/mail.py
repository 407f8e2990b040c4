"""Messages as the CRM stores them (``messages`` columns)."""

from __future__ import annotations

import enum


class MessageDirection(enum.StrEnum):
    INBOUND = "inbound"  # received from a contact
    OUTBOUND = "outbound"  # sent by the sub-account's user, from the CRM or the mailbox


class MessageOrigin(enum.StrEnum):
    CRM = "crm"  # written in the CRM and sent from it
    MAILBOX = "mailbox"  # written or received in the mailbox, then synced


class MessageStatus(enum.StrEnum):
    """Delivery state of a message."""

    QUEUED = "queued"  # a CRM send waiting in the outbox
    SENT = "sent"  # a CRM send the provider accepted
    FAILED = "failed"  # a CRM send the provider refused for good
    SYNCED = "synced"  # read from the mailbox
    # A CRM send handed to an SMTP relay whose answer was lost: not sent again (at most once).
    UNCERTAIN = "uncertain"
