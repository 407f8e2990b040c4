"""The sender side: the sub-account's SMTP relay, bulk sends and send idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, CreatedMixin, IdMixin, stored_enum, utcnow
from vocabulary import BulkSendStatus as BulkSendStatus
from vocabulary import RouteReason, SenderRoute, SmtpTlsMode


class SubAccountEmailProvider(IdMixin, CreatedMixin, Base):
    """The sub-account-level provider (DESIGN.md rule 10): an SMTP relay. Bulk email that
    is not from the user's own mailbox, workflow email, and individual email of users
    without a mailbox leave through it."""

    __tablename__ = "sub_account_email_providers"

    sub_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sub_accounts.id", ondelete="CASCADE"), unique=True
    )
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int]
    tls_mode: Mapped[SmtpTlsMode] = mapped_column(stored_enum(SmtpTlsMode, 10))
    username: Mapped[str | None] = mapped_column(String(320))
    # Fernet ciphertext, like mailbox tokens; never returned by the API.
    password_ciphertext: Mapped[str | None] = mapped_column(Text)
    from_email: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(200))
    # Bulk sends through the relay are paced to this (the relay's own limit).
    max_per_minute: Mapped[int] = mapped_column(default=600)
    verified_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BulkSend(IdMixin, CreatedMixin, Base):
    """One bulk email: a delivery (message + outbox row) per recipient, each with its result."""

    __tablename__ = "bulk_sends"

    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    route: Mapped[SenderRoute] = mapped_column(stored_enum(SenderRoute, 12))
    route_reason: Mapped[RouteReason] = mapped_column(stored_enum(RouteReason, 40))
    from_email: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[BulkSendStatus] = mapped_column(stored_enum(BulkSendStatus, 10), default=BulkSendStatus.QUEUED)
    total: Mapped[int] = mapped_column(default=0)
    sent_count: Mapped[int] = mapped_column(default=0)
    failed_count: Mapped[int] = mapped_column(default=0)
    completed_at: Mapped[datetime | None]
    # Held (and renewed after every delivery) by the job draining it: one drain at a
    # time keeps the pacing; a dead worker's drain is taken over once it lapses.
    drain_lease_until: Mapped[datetime | None]


class IdempotencyKey(IdMixin, CreatedMixin, Base):
    """Same key + same caller = same result for 24 hours: a retried send mutation answers
    with what the first one queued instead of sending again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("sub_account_id", "caller", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"))
    caller: Mapped[str] = mapped_column(String(80))  # "user:<id>" or "api_key:<id>"
    key: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(40))
    # SHA-256 of the request: the same key with another request is refused, not replayed.
    request_hash: Mapped[str] = mapped_column(String(64))
    result_id: Mapped[uuid.UUID]
    expires_at: Mapped[datetime]
