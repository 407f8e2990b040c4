"""The durable event log: every domain event, numbered per sub-account.

An event row is written in the same transaction as the change it describes, so a
committed change always has its event and a rolled-back one never does. ``seq`` comes
from the sub-account's row in ``event_counters``, taken with an update that holds the
row lock until commit: events of one sub-account therefore commit in ``seq`` order, and
a reader that sees event N has every event below N visible too (no holes to wait for).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, stored_enum
from vocabulary import EventType


class EventCounter(Base):
    __tablename__ = "event_counters"

    sub_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sub_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Events up to here were removed by the retention purge: a cursor below it cannot replay.
    purged_through: Mapped[int] = mapped_column(BigInteger, default=0)


class EventRecord(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_occurred_at", "occurred_at"),)

    sub_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sub_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[EventType] = mapped_column(stored_enum(EventType, 32))
    # Ids only, never content: an event is a pointer to rows read with the reader's scope.
    thread_id: Mapped[uuid.UUID | None]
    message_id: Mapped[uuid.UUID | None]
    connection_id: Mapped[uuid.UUID | None]
    user_id: Mapped[uuid.UUID | None]
    status: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
