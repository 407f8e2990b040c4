"""Reading mailboxes: folders, what a provider reports, and why a message was not synced."""

from __future__ import annotations

import enum


class Folder(enum.StrEnum):
    """The synced folders; a message's folder decides its direction."""

    INBOX = "inbox"
    SENT = "sent"


class ChangeKind(enum.StrEnum):
    """What an adapter reports about one message of a mailbox."""

    UPSERT = "upsert"  # new message, or a full copy of a known one
    READ_STATE = "read_state"  # only the read flag is known to have changed
    REMOVED = "removed"  # deleted from the mailbox (or moved out of synced folders)


class PushKind(enum.StrEnum):
    """What a provider's change notification says."""

    CHANGED = "changed"
    REAUTHORIZATION_REQUIRED = "reauthorization_required"
    SUBSCRIPTION_REMOVED = "subscription_removed"
    MISSED = "missed"


class AttachmentProblem(enum.StrEnum):
    """Why an attachment may not sync (DESIGN.md rule 6); stored as the message's skip reason."""

    TOO_LARGE = "attachment_too_large"
    TYPE_NOT_ALLOWED = "attachment_type_not_allowed"
    CONTENT_MISMATCH = "attachment_content_mismatch"


class SkipReason(enum.StrEnum):
    """Why a mailbox message was deliberately not synced (``sync_skips.reason``, shown by
    ``syncSkips``: "why didn't my email sync?")."""

    # Exchanged with another user of the sub-account: kept as an opaque row (so its count
    # stays exact across replays) and shown only as a count.
    CONFIDENTIAL = "confidential"
    # Inbound without a sender address: it cannot be told apart from a contact's mail.
    NO_SENDER = "no_sender"
    # The CRM's own message once more (a copy of a CRM send no stored send is left for).
    COPY_OF_CRM_SEND = "copy_of_crm_send"
    ATTACHMENT_TOO_LARGE = AttachmentProblem.TOO_LARGE.value
    ATTACHMENT_TYPE_NOT_ALLOWED = AttachmentProblem.TYPE_NOT_ALLOWED.value
    ATTACHMENT_CONTENT_MISMATCH = AttachmentProblem.CONTENT_MISMATCH.value
