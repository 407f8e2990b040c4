"""Sync skips (messages deliberately not synced, with the reason) and the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, CreatedMixin, IdMixin, stored_enum, utcnow
from vocabulary import OutboxStatus as OutboxStatus
from vocabulary import SenderRoute, SkipReason


class SyncSkip(IdMixin, CreatedMixin, Base):
    """"Why didn't my email sync?" — one row per skipped provider message."""

    __tablename__ = "sync_skips"
    __table_args__ = (UniqueConstraint("connection_id", "provider_message_id"),)

    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("email_connections.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider_message_id: Mapped[str] = mapped_column(String(512))
    reason: Mapped[SkipReason] = mapped_column(stored_enum(SkipReason, 40))
    detail: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    from_email: Mapped[str | None] = mapped_column(String(320))
    sent_at: Mapped[datetime | None]


class OutboxItem(IdMixin, CreatedMixin, Base):
    """A CRM send, committed with its thread and message before any provider call."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    connection_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("email_connections.id", ondelete="SET NULL"))
    # mailbox: through ``connection_id``; sub_account: through the sub-account's SMTP relay.
    route: Mapped[SenderRoute] = mapped_column(
        stored_enum(SenderRoute, 12), default=SenderRoute.MAILBOX, server_default=SenderRoute.MAILBOX.value
    )
    # Deliveries of a bulk send are drained by its own paced job, not one job each.
    bulk_send_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bulk_sends.id", ondelete="CASCADE"), index=True)
    status: Mapped[OutboxStatus] = mapped_column(stored_enum(OutboxStatus, 10), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # The adapter's saved progress (e.g. the Graph draft id) so a retry never sends twice.
    checkpoint: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
