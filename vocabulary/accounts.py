"""Who is who in a sub-account."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """A user's role in their sub-account (``users.role``)."""

    ADMIN = "admin"  # manages the sub-account: labs flags, every mailbox
    USER = "user"  # staff: their own mailbox and the shared inbox


class ContactSource(enum.StrEnum):
    """How a contact came to exist (``contacts.source``)."""

    CRM = "crm"  # created in the CRM or through the API
    BCC = "bcc"  # created by the sub-account's BCC sync address
