"""What a repository write tells its caller beyond success."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import Base


class AlreadyExists(Exception):
    """A new row collided with a unique key (usually: a concurrent insert of the same key
    won). The transaction is unusable afterwards; the caller lets it roll back."""


async def flush_row(session: AsyncSession, row: Base) -> None:
    """Write a new or changed ``row`` now (flush), so a collision surfaces here as
    ``AlreadyExists`` rather than at commit."""
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(type(row).__name__) from exc


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched (an executed DML statement's result is a
    cursor result; ``Session.execute`` types it as a plain ``Result``)."""
    return cast(CursorResult[Any], result).rowcount
