"""Relay cursor connections (forward pagination: ``first`` / ``after``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import strawberry

from api.errors import BadUserInput
from db.repositories.paging import Page

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT")
KeyT = TypeVar("KeyT")


@strawberry.type(description="Where a page sits in its list (Relay cursor connections).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="True when more items follow `endCursor`.")
    has_previous_page: bool = strawberry.field(
        description="True when the page was requested with an `after` cursor (items precede it)."
    )
    start_cursor: str | None = strawberry.field(description="Cursor of the first item of the page.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last item; pass it as `after`.")


@strawberry.type(description="An item of a list with its pagination cursor.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(description="Opaque cursor of this item, for `after`.")
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(description="A page of items, with cursors to fetch the next page.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(description="The items of the page with their cursors.")
    page_info: PageInfo = strawberry.field(description="Pagination state of the page.")

    @strawberry.field(description="The items of the page, without cursors.")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


def make_connection(
    nodes: list[NodeT], cursors: list[str], *, has_next: bool, had_cursor: bool
) -> Connection[NodeT]:
    edges = [Edge(cursor=c, node=n) for n, c in zip(nodes, cursors, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=had_cursor,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
    )


def empty_connection() -> Connection[NodeT]:
    return make_connection([], [], has_next=False, had_cursor=False)


def keyset_after(after: str | None, decode: Callable[[str], KeyT | None]) -> KeyT | None:
    """The keyset an ``after`` cursor holds (None without a cursor); a cursor that does
    not decode is the client's error."""
    if after is None:
        return None
    keyset = decode(after)
    if keyset is None:
        raise BadUserInput("invalid cursor")
    return keyset


def connection_from_page(
    page: Page[RowT], node: Callable[[RowT], NodeT], cursor: Callable[[RowT], str], *, after: str | None
) -> Connection[NodeT]:
    """The connection of a repository page: ``node`` and ``cursor`` map each row."""
    return make_connection(
        [node(row) for row in page.rows],
        [cursor(row) for row in page.rows],
        has_next=page.has_next,
        had_cursor=after is not None,
    )
