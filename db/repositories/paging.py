"""Keyset pagination helpers shared by the list queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

RowT = TypeVar("RowT")

MAX_PAGE_SIZE = 100


@dataclass(slots=True)
class Page(Generic[RowT]):
    """One page of rows; ``has_next`` is known because one extra row was fetched."""

    rows: list[RowT]
    has_next: bool


def clamp_page_size(first: int | None, default: int = 50) -> int:
    if first is None:
        return default
    return max(0, min(first, MAX_PAGE_SIZE))


def split_page(rows: Sequence[RowT], limit: int) -> Page[RowT]:
    """``rows`` were fetched with ``limit + 1``: the extra one only says a next page exists."""
    return Page(rows=list(rows[:limit]), has_next=len(rows) > limit)


def like_pattern(term: str) -> str:
    """A LIKE pattern matching ``term`` anywhere, with LIKE wildcards escaped (escape char ``\\``)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
