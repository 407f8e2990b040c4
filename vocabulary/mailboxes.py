"""Connected mailboxes: who provides them and what state they are in."""

from __future__ import annotations

import enum


class Provider(enum.StrEnum):
    """A mailbox provider (``email_connections.provider``, ``oauth_flows.provider``, and the
    provider's segment of OAuth callback and webhook paths)."""

    OUTLOOK = "outlook"
    GMAIL = "gmail"


class ConnectionStatus(enum.StrEnum):
    """State of a mailbox connection (``email_connections.status``)."""

    CONNECTING = "connecting"  # signed in; the first sync has not finished
    ACTIVE = "active"
    SYNCING = "syncing"
    REAUTH_REQUIRED = "reauth_required"  # the provider revoked access: the user must connect again
    ERROR = "error"  # sync is failing and is retried
    DISCONNECTED = "disconnected"

    # States in which the mailbox still syncs and sends (an ERROR one is retried).
    # Plain values: the members do not exist yet while the class body runs.
    LIVE = enum.nonmember((ACTIVE, SYNCING, CONNECTING, ERROR))
