"""Mailbox connections and pending OAuth sign-ins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, CreatedMixin, IdMixin, stored_enum, utcnow
from vocabulary import ConnectionStatus as ConnectionStatus
from vocabulary import Provider


class EmailConnection(IdMixin, CreatedMixin, Base):
    __tablename__ = "email_connections"
    __table_args__ = (
        # A user has at most one current connection; replaced ones stay for history.
        Index(
            "uq_email_connections_current_user",
            "user_id",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
    )

    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[Provider] = mapped_column(stored_enum(Provider, 20))
    address: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[ConnectionStatus] = mapped_column(stored_enum(ConnectionStatus, 20), default=ConnectionStatus.CONNECTING)
    status_detail: Mapped[str | None] = mapped_column(Text)
    is_current: Mapped[bool] = mapped_column(default=True)

    # Fernet ciphertext of the token set (JSON); erased on disconnect.
    token_ciphertext: Mapped[str | None] = mapped_column(Text)
    # Per-folder delta/history cursors, committed with the messages they cover.
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    watch_id: Mapped[str | None] = mapped_column(String(200), index=True)
    watch_expires_at: Mapped[datetime | None]
    # SHA-256 of the Graph clientState secret; the secret itself is not kept.
    client_state_hash: Mapped[str | None] = mapped_column(String(64))

    # "A notification during a sync is not lost": requests bump this, a pass records
    # the value it started from; the lease is released only when they match.
    sync_requested_seq: Mapped[int] = mapped_column(default=0)
    sync_done_seq: Mapped[int] = mapped_column(default=0)
    sync_lease_until: Mapped[datetime | None]
    sync_lease_owner: Mapped[str | None] = mapped_column(String(64))

    last_sync_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    messages_synced: Mapped[int] = mapped_column(default=0)
    confidential_skipped: Mapped[int] = mapped_column(default=0)
    connected_at: Mapped[datetime | None]
    disconnected_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OAuthFlow(CreatedMixin, Base):
    """A sign-in started by ``startEmailConnection`` and not yet completed.

    Two steps: the provider's answer arrives at the callback (found by ``state``, at most
    once), which parks it encrypted and issues a flow token; the CRM session that started
    the sign-in then confirms with that token (``completeEmailConnection``), which
    deletes the row and connects the mailbox. Only the token's SHA-256 is kept.
    """

    __tablename__ = "oauth_flows"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[Provider] = mapped_column(stored_enum(Provider, 20))
    # Encrypted provider flow (PKCE verifier, nonce...).
    flow_ciphertext: Mapped[str] = mapped_column(Text)
    # Where the browser goes once the sign-in completes (the SPA).
    return_to: Mapped[str | None] = mapped_column(Text)
    # Until the provider answers: the sign-in's deadline; afterwards: the flow token's.
    expires_at: Mapped[datetime]
    # Set when the provider has answered: SHA-256 (hex) of the one-time flow token handed
    # to the browser, and the provider's answer (authorization code...), encrypted.
    flow_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    answer_ciphertext: Mapped[str | None] = mapped_column(Text)
