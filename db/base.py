"""Declarative base and column helpers shared by the models."""

from __future__ import annotations

import enum
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Enum, MetaData, Table, TypeDecorator, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class _IdClock:
    """The last millisecond an id was made in and the sequence within it, under a lock."""

    def __init__(self) -> None:
        self.last_ms = 0
        self.sequence = 0
        self.lock = threading.Lock()


_clock = _IdClock()


def new_id() -> uuid.UUID:
    """A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, a 12-bit
    sequence that keeps ids of this process strictly increasing within a millisecond,
    then 62 random bits. Ids therefore sort in creation order, which is the tie-breaker
    of every (timestamp, id) ordering: messages sent within the same second (providers
    report whole seconds) list in the order they reached us."""
    clock = _clock
    with clock.lock:
        ms = time.time_ns() // 1_000_000
        if ms > clock.last_ms:
            clock.last_ms, clock.sequence = ms, secrets.randbits(8)  # room to count up within the millisecond
        else:
            clock.sequence += 1
            if clock.sequence >= 1 << 12:  # 4,096 ids in one millisecond: borrow the next one
                clock.last_ms, clock.sequence = clock.last_ms + 1, 0
        ms, sequence = clock.last_ms, clock.sequence
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | sequence << 64 | 0b10 << 62 | secrets.randbits(62)
    return uuid.UUID(int=value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops tzinfo) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


def stored_enum(enum_class: type[enum.StrEnum], length: int) -> Enum:
    """A ``vocabulary`` enum in a ``VARCHAR(length)`` column holding its values: rows load
    members, and writing a value the enum lacks fails before reaching the database. No
    database enum type and no CHECK constraint (the column is the plain string column the
    migrations made), so a new member needs no migration, only a long enough column."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        validate_strings=True,
        # Store the values ("reauth_required"), not SQLAlchemy's default, the member names.
        values_callable=_values,
    )


def _values(enum_class: type[enum.StrEnum]) -> list[str]:
    return [member.value for member in enum_class]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, TypeEngine[Any]]] = {datetime: UTCDateTime(), uuid.UUID: Uuid()}
    # Every model declares ``__tablename__``, so its table is a ``Table`` (SQLAlchemy types
    # it as any ``FromClause``): repositories build Core statements on it.
    __table__: ClassVar[Table]


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class CreatedMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
