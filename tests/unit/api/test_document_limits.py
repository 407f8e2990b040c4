"""The linear-time measure agrees with strawberry's depth and alias rules where those
finish, and stays linear where they do not."""

from __future__ import annotations

import time

import pytest
from graphql import parse, validate
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

from api.document_limits import (
    DocumentLimits,
    document_limits_rule,
    limit_error,
    measure_operations,
)
from api.schema import schema

DOCUMENTS = [
    "{ viewer { kind } }",
    '{ thread(id: "x") { lastMessage { thread { lastMessage { id } } } } }',
    '{ a: thread(id: "x") { id } b: thread(id: "y") { id subject } }',
    "{ viewer { ...V } } fragment V on Viewer { kind k2: kind user { email e: email } }",
    (
        "query Q { ...Root ...Root } fragment Root on Query { viewer { ...V } t: threads { edges { node { id } } } }"
        " fragment V on Viewer { k: kind subAccount { name } }"
    ),
    (
        '{ thread(id: "x") { ... on Thread { lastMessage { ...M } } } } fragment M on Message { t: thread { ...T } }'
        " fragment T on Thread { lastMessage { thread { lastMessage { thread { id } } } } }"
    ),
    "{ __schema { types { name fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }",
    "query One { viewer { kind } } query Two { a: viewer { kind } }",
]


def strawberry_errors(document: str, max_depth: int, max_aliases: int) -> list[str]:
    rules = [depth_rule(max_depth, None), alias_rule(max_aliases)]
    return [e.message for e in validate(schema._schema, parse(document), rules)]


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize(("max_depth", "max_aliases"), [(12, 30), (3, 2), (2, 1), (1, 0)])
def test_same_verdict_as_strawberry(document: str, max_depth: int, max_aliases: int) -> None:
    ours = limit_error(DocumentLimits(max_depth=max_depth, max_aliases=max_aliases, max_fields=10_000), parse(document))
    theirs = strawberry_errors(document, max_depth, max_aliases)
    assert (ours is None) == (not theirs), (ours, theirs)
    if ours is not None:
        assert ours in theirs


def test_measures() -> None:
    measures = measure_operations(parse(DOCUMENTS[4]))
    # Root is spread twice: its aliases (t, k) and fields count twice.
    assert measures["Q"].aliases == 4
    assert measures["Q"].fields == 2 * (1 + 1 + 1 + 1 + 1 + 1 + 1 + 1)
    assert measures["Q"].depth == 3  # threads > edges > node { id }
    assert measure_operations(parse(DOCUMENTS[6]))["anonymous"].depth == 0  # introspection is not counted


def test_doubling_chain_is_measured_in_linear_time() -> None:
    levels = 300
    fragments = " ".join(f"fragment F{i} on Viewer {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    document = parse("{ viewer { ...F0 } } " + fragments + f" fragment F{levels} on Viewer {{ a: kind }}")
    started = time.perf_counter()
    measure = measure_operations(document)["anonymous"]
    assert time.perf_counter() - started < 0.5
    assert measure.aliases == measure.fields == 1 << 40  # saturated, not 2^300


def test_long_linear_chain_does_not_exhaust_the_stack() -> None:
    # Longer than Python's recursion limit: fragments are resolved with an explicit stack.
    levels = 3000
    fragments = " ".join(f"fragment F{i} on Viewer {{ ...F{i + 1} }}" for i in range(levels))
    document = parse("{ viewer { ...F0 } } " + fragments + f" fragment F{levels} on Viewer {{ kind }}")
    assert measure_operations(document)["anonymous"].fields == 2


def test_cycles_terminate() -> None:
    document = parse("{ viewer { ...A } } fragment A on Viewer { kind ...B } fragment B on Viewer { k: kind ...A }")
    measure = measure_operations(document)["anonymous"]
    assert measure.fields >= 2


def test_rule_aborts_validation_with_one_error() -> None:
    rule = document_limits_rule(DocumentLimits(max_depth=12, max_aliases=30, max_fields=100))
    aliases = " ".join(f"a{i}: kind" for i in range(40))
    errors = validate(schema._schema, parse(f"{{ viewer {{ {aliases} }} }}"), [rule])
    assert [e.message for e in errors] == ["40 aliases found. Allowed: 30"]
