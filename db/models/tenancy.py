"""Sub-accounts, their users and contacts, and partner API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, CreatedMixin, IdMixin, stored_enum
from vocabulary import ContactSource, Role


class SubAccount(IdMixin, CreatedMixin, Base):
    __tablename__ = "sub_accounts"

    agency_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Labs "two-way sync": when off only CRM-initiated threads sync.
    labs_two_way_sync: Mapped[bool] = mapped_column(default=False)
    bcc_sync_address: Mapped[str] = mapped_column(String(320), unique=True)


class User(IdMixin, CreatedMixin, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("sub_account_id", "email_normalized"),)

    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(stored_enum(Role, 20), default=Role.USER)


class Contact(IdMixin, CreatedMixin, Base):
    __tablename__ = "contacts"
    # Email is unique per sub-account, case-insensitively (normalized column).
    __table_args__ = (UniqueConstraint("sub_account_id", "email_normalized"),)

    sub_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[ContactSource] = mapped_column(stored_enum(ContactSource, 20), default=ContactSource.CRM)


class ApiKey(IdMixin, CreatedMixin, Base):
    """A partner app's key, stored as a SHA-256 hash; scoped to a sub-account or an agency."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    sub_account_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sub_accounts.id", ondelete="CASCADE"))
    agency_id: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None]
