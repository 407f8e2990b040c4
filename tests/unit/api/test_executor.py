"""The lean executor's shortcuts give exactly what graphql-core's generic path gives:
same data, same errors (message, path), same null propagation, and they step aside
for anything unusual."""

from __future__ import annotations

import enum
import gc
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from api.executor import LeanExecutionContext


@strawberry.enum
class Kind(enum.Enum):
    A = "a"
    B = "b"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Tag:
    label: str
    weight: int | None


@strawberry.type
class Item(Named):
    name: str
    note: str | None
    count: int
    at: datetime | None
    kind: Kind
    labels: list[str]
    tags: list[Tag]
    child: Item | None
    anything: strawberry.Private[Any] = None

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


class InternalDetail(Exception):
    """Not a builtin: graphql-core's String serializer would str() it."""


def _item(**overrides: Any) -> Item:
    values: dict[str, Any] = dict(
        name="one", note=None, count=1, at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), kind=Kind.A,
        labels=["x", "y"], tags=[Tag(label="t", weight=None)], child=None,
    )
    values.update(overrides)
    return Item(**values)


ITEMS: dict[str, list[Any]] = {
    "ok": [_item(), _item(name="two", note="n", child=_item(name="kid"), kind=Kind.B)],
    "null_leaf": [_item(), _item(name=None)],
    "bad_int": [_item(count="many")],
    "exception_value": [_item(note=ValueError("boom"))],
    "custom_exception_value": [_item(note=InternalDetail("secret internal detail"))],
    "null_in_list": [_item(labels=["x", None])],
    "wrong_child": [_item(child=Tag(label="not an item", weight=1))],
    "null_object_in_list": [_item(tags=[None])],
    "bad_enum": [_item(kind="c")],
}


@strawberry.type
class Query:
    @strawberry.field
    def items(self, case: str) -> list[Item]:
        return ITEMS[case]

    @strawberry.field
    def maybe_items(self, case: str) -> list[Item | None] | None:
        return ITEMS[case]

    @strawberry.field
    def named(self) -> Named:
        return _item()


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, count: int) -> AsyncGenerator[Item, None]:
        for i in range(count):
            yield _item(name=f"t{i}")


plain = strawberry.Schema(query=Query)
lean = strawberry.Schema(query=Query, subscription=Subscription, execution_context_class=LeanExecutionContext)

SELECTION = """{ __typename name n: note count at kind labels tags { label weight __typename }
  child { name ...F } shout } fragment F on Item { kind at }"""


def _run(schema: strawberry.Schema, query: str, variables: dict[str, Any] | None = None) -> Any:
    result = schema.execute_sync(query, variable_values=variables)
    return result.data, [error.formatted for error in result.errors or ()]


@pytest.mark.parametrize("case", sorted(ITEMS))
@pytest.mark.parametrize("field", ["items", "maybeItems"])
def test_same_result_as_graphql_core(case: str, field: str) -> None:
    query = SELECTION.replace("{ __typename", f'{{ {field}(case: "{case}") {{ __typename', 1).replace(
        "shout }", "shout } }", 1
    )
    expected = _run(plain, query)
    assert _run(lean, query) == expected
    if case == "ok":
        assert not expected[1] and expected[0][field][1]["child"]["name"] == "kid"
    else:
        assert expected[1]  # every other case is an error the generic path reports


def test_interfaces_aliases_and_directives() -> None:
    query = """query Q($skip: Boolean!) { named { __typename name ... on Item { count c2: count labels @skip(if: $skip) } }
      items(case: "ok") { a: name b: name kind @include(if: $skip) child { __typename } } }"""
    for skip in (True, False):
        assert _run(lean, query, {"skip": skip}) == _run(plain, query, {"skip": skip})


class Upper(SchemaExtension):
    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


def test_resolve_hooks_still_see_every_field() -> None:
    hooked = strawberry.Schema(query=Query, extensions=[Upper], execution_context_class=LeanExecutionContext)
    data, errors = _run(hooked, '{ items(case: "ok") { name tags { label } } }')
    assert not errors
    assert data["items"][0] == {"name": "ONE", "tags": [{"label": "T"}]}


def _live_contexts() -> list[LeanExecutionContext]:
    gc.collect()
    return [obj for obj in gc.get_objects() if isinstance(obj, LeanExecutionContext)]


class Quiet(strawberry.Schema):
    """Logs nothing: a captured log record's traceback would itself keep executions alive."""

    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        return None


def test_giving_up_keeps_no_execution_alive() -> None:
    """A completer's give-up must not pin executions (a shared exception's traceback would)."""
    quiet = Quiet(query=Query, execution_context_class=LeanExecutionContext)
    # Earlier tests' contexts may be pinned by the exception instances in ITEMS (raising a
    # module-level exception attaches a traceback to it): count only what this loop adds.
    before = len(_live_contexts())
    for _ in range(30):
        data, errors = _run(quiet, '{ items(case: "null_leaf") { name } }')
        assert errors and data is None
    assert len(_live_contexts()) == before


async def test_subscription_memos_do_not_grow_with_events() -> None:
    stream = await lean.subscribe("subscription { ticks(count: 200) { name tags { label } child { name } } }")
    received = 0
    async for result in stream:
        assert not result.errors
        received += 1
        if received == 200:
            sizes = [len(context._completers) for context in _live_contexts()]
            assert sizes and max(sizes) <= 5, sizes
    assert received == 200
