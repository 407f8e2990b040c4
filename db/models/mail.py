"""Threads, messages and attachment metadata."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, CreatedMixin, IdMixin, stored_enum
from vocabulary import EmailKind, MessageDirection, MessageOrigin, MessageStatus, RouteReason, SenderRoute


class Thread(IdMixin, CreatedMixin, Base):
    __tablename__ = "threads"
    __table_args__ = (
        UniqueConstraint("connection_id", "provider_thread_key"),
        # The hot list: a sub-account's most recent threads.
        Index("ix_threads_recent", "sub_account_id", "last_message_at", "id"),
    )

    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    # The mailbox the thread lives in (None: sent through the sub-account provider).
    connection_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("email_connections.id", ondelete="SET NULL"))
    provider_thread_key: Mapped[str | None] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(Text, default="")
    snippet: Mapped[str] = mapped_column(Text, default="")
    last_message_at: Mapped[datetime | None]
    message_count: Mapped[int] = mapped_column(default=0)
    unread_count: Mapped[int] = mapped_column(default=0)


class Message(IdMixin, CreatedMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # No duplicates: one row per provider message in a mailbox. Not per Message-ID: it
        # is not unique in the wild (resends, broken mailers, reused test corpora), so two
        # messages of a mailbox may share one; only the Sent copy of a CRM send is matched
        # to its row by Message-ID (sync_engine.services.page_plan).
        UniqueConstraint("connection_id", "provider_message_id"),
        Index("ix_messages_thread_sent", "thread_id", "sent_at"),
        Index("ix_messages_message_id_header", "sub_account_id", "message_id_header"),
    )

    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"))
    thread_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    connection_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("email_connections.id", ondelete="SET NULL"))
    direction: Mapped[MessageDirection] = mapped_column(stored_enum(MessageDirection, 10))
    origin: Mapped[MessageOrigin] = mapped_column(stored_enum(MessageOrigin, 10))
    status: Mapped[MessageStatus] = mapped_column(stored_enum(MessageStatus, 12))
    provider_message_id: Mapped[str | None] = mapped_column(String(512))
    message_id_header: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_email: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(200))
    to_addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cc_addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    bcc_addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    html: Mapped[str | None] = mapped_column(Text)  # sanitized
    text: Mapped[str | None] = mapped_column(Text)
    snippet: Mapped[str] = mapped_column(Text, default="")
    is_read: Mapped[bool] = mapped_column(default=False)
    # Set with a read-state change made in the CRM until it is written back to the mailbox:
    # the import must not undo it meanwhile, and a periodic job retries the write-back.
    read_writeback_pending: Mapped[bool] = mapped_column(default=False, server_default=false())
    deleted_in_mailbox: Mapped[bool] = mapped_column(default=False)
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # CRM sends: which service it left through, why (decided by sync_engine.rules.sender),
    # what kind of email it was, and its bulk send.
    route: Mapped[SenderRoute | None] = mapped_column(stored_enum(SenderRoute, 12))
    route_reason: Mapped[RouteReason | None] = mapped_column(stored_enum(RouteReason, 40))
    kind: Mapped[EmailKind | None] = mapped_column(stored_enum(EmailKind, 12))
    bulk_send_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bulk_sends.id", ondelete="SET NULL"), index=True
    )


class Attachment(IdMixin, CreatedMixin, Base):
    __tablename__ = "attachments"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(512))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int]
    provider_attachment_id: Mapped[str | None] = mapped_column(Text)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
