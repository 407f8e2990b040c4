"""What our code relies on in graphql-core beyond its documented API (pinned in pyproject.toml).

Each test drives one reliance through our own code; a failure names the module to
revisit after upgrading graphql-core.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from graphql import GraphQLError, build_schema, parse, validate
from graphql.validation import ValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.document_cache import DocumentCaches
from api.document_limits import DocumentLimits, document_limits_rule
from api.executor import LeanExecutionContext
from api.graphql_http import _is_request_error
from api.schema import _ECHOED_INPUT, _drop_echoed_input

# ---- api/executor.py: graphql-core's executor methods, overridden or called

_contexts: list[LeanExecutionContext] = []


class _Recorded(LeanExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _contexts.append(self)


@strawberry.type
class Tag:
    label: str


@strawberry.type
class Item:
    name: str
    count: int
    tags: list[Tag]

    @strawberry.field
    def shout(self) -> str:  # a resolver: Item is completed field by field, Tag in one go
        return self.name.upper()


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(name="a", count=1, tags=[Tag(label="t")]), Item(name="b", count=2, tags=[])]


class PassThrough(SchemaExtension):
    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        return _next(root, info, *args, **kwargs)


lean = strawberry.Schema(query=Query, execution_context_class=_Recorded)
hooked = strawberry.Schema(query=Query, extensions=[PassThrough], execution_context_class=_Recorded)
ITEMS = "{ items { name count shout tags { label } } }"


def _execute(schema: strawberry.Schema) -> LeanExecutionContext:
    _contexts.clear()
    result = schema.execute_sync(ITEMS)
    assert result.errors is None, f"api/executor.py no longer runs on this graphql-core: {result.errors}"
    assert result.data == {"items": [{"name": "a", "count": 1, "shout": "A", "tags": [{"label": "t"}]},
                                     {"name": "b", "count": 2, "shout": "B", "tags": []}]}
    return _contexts[-1]


def test_the_lean_executor_shortcuts_are_still_taken() -> None:
    """Both shortcuts hang off graphql-core methods: if a rename means they are no longer
    called, results stay right and only the speed is lost, so check they run."""
    context = _execute(lean)
    item, tag = (lean._schema.type_map[name] for name in ("Item", "Tag"))
    assert context._leaves.get((item, "name")) is not None, (
        "api/executor.py: graphql-core no longer calls execute_field(parent_type, source, field_details_list, "
        "path, position_context) per field (or FieldDetails.node / coerce_output_value changed): "
        "the plain-leaf shortcut is never taken"
    )
    assert any(completer is not None for (type_, _), (_, completer) in context._completers.items() if type_ is tag), (
        "api/executor.py: graphql-core no longer calls complete_object_value(...) or collect_subfields() no "
        "longer returns (grouped_field_set, new_defer_usages, _): the whole-object shortcut is never taken"
    )


@pytest.mark.parametrize("name", ["execute_field", "complete_object_value", "build_per_event_executor"])
def test_overridden_methods_keep_their_parameters(name: str) -> None:
    ours = inspect.signature(getattr(LeanExecutionContext, name))
    theirs = inspect.signature(getattr(StrawberryGraphQLCoreExecutionContext, name))
    assert list(ours.parameters) == list(theirs.parameters), (
        f"graphql-core's ExecutionContext.{name}{theirs} changed: update LeanExecutionContext.{name} in api/executor.py"
    )


def test_collect_subfields_keeps_its_parameters() -> None:
    """Called (not overridden) by api/executor.py's ``_build_object``."""
    theirs = inspect.signature(StrawberryGraphQLCoreExecutionContext.collect_subfields)
    assert list(theirs.parameters) == ["self", "return_type", "field_details_list"], (
        f"graphql-core's collect_subfields{theirs} changed: update LeanExecutionContext._build_object in api/executor.py"
    )


def test_each_subscription_event_gets_fresh_memos() -> None:
    """graphql-core runs each subscription event on a shallow copy of the executor; our
    override clears the memos keyed by field-list id there, graphql-core's private
    ``_relevant_sub_fields`` included (it only does so ``if hasattr``: a rename would
    silently bring back a memo that grows with every event)."""
    context = _execute(lean)
    assert getattr(context, "_relevant_sub_fields", None), (
        "graphql-core's collect_subfields memo is no longer `_relevant_sub_fields`: find its new name for "
        "LeanExecutionContext.build_per_event_executor in api/executor.py"
    )
    copy = context.build_per_event_executor({"items": []})
    assert copy is not context and copy.root_value == {"items": []}, (
        "graphql-core's build_per_event_executor no longer returns a copy: revisit api/executor.py"
    )
    assert copy._completers == {} and copy._relevant_sub_fields == {}
    assert context._completers and context._relevant_sub_fields, "clearing the copy's memos emptied the original's"


def test_a_resolve_hook_turns_the_shortcuts_off() -> None:
    """api/executor.py reads ``self.middleware_manager.middlewares``: a resolve-hooking
    extension must see every field, so it must turn the shortcuts off."""
    assert _execute(lean)._shortcuts is True
    assert _execute(hooked)._shortcuts is False, (
        "graphql-core's MiddlewareManager no longer lists its middlewares in `.middlewares`: "
        "LeanExecutionContext.__init__ in api/executor.py would skip resolve hooks"
    )


# ---- api/document_limits.py: the validation visitor, and aborting validation


class CountFields(ValidationRule):
    seen = 0

    def enter_field(self, *_args: object) -> None:
        type(self).seen += 1


def test_the_limit_rule_aborts_validation_before_other_rules_run() -> None:
    schema = build_schema("type Query { kind: String }")
    rule = document_limits_rule(DocumentLimits(max_depth=5, max_aliases=2, max_fields=100))
    CountFields.seen = 0
    assert validate(schema, parse("{ a: kind b: kind }"), [rule, CountFields]) == []
    assert CountFields.seen == 2  # the counting rule does see fields when nothing aborts
    CountFields.seen = 0
    try:
        errors = validate(schema, parse("{ a: kind b: kind c: kind }"), [rule, CountFields])
    except GraphQLError as exc:
        pytest.fail(f"api/document_limits.py: graphql-core's validate() no longer catches the "
                    f"ValidationAbortedError (graphql.validation.validate) our rule raises: {exc!r}")
    assert [error.message for error in errors] == ["3 aliases found. Allowed: 2"], (
        "api/document_limits.py: graphql-core no longer dispatches `enter_document` to a ValidationRule, or no "
        f"longer turns a ValidationAbortedError into the last validation error: {errors}"
    )
    assert CountFields.seen == 0, (
        "api/document_limits.py: raising ValidationAbortedError no longer stops the other rules, which then walk "
        "an oversized document"
    )


# ---- api/document_cache.py: parse options


def test_parse_under_a_token_limit_raises_a_graphql_error() -> None:
    """The parse cache parses with strawberry's parse options and leaves a document that
    fails (a GraphQLError) for strawberry to parse again and report."""
    caches = DocumentCaches(max_entries=8, max_bytes=1 << 20, max_document_chars=10_000)
    for query, parsed in (("{ a b c d e f g h }", False), ("{ a }", True)):
        extension = caches.parser_extension()
        extension.execution_context = SimpleNamespace(  # type: ignore[assignment]
            query=query, graphql_document=None, parse_options={"max_tokens": 5}
        )
        hook = extension.on_parse()
        next(hook)  # raises if parse() raised something else than a GraphQLError
        assert (extension.execution_context.graphql_document is not None) is parsed, (
            "api/document_cache.py: graphql-core's parse(query, max_tokens=...) no longer limits tokens"
        )
    assert len(caches.parsed) == 1
    with pytest.raises(GraphQLError):
        parse("{ a b c d e f g h }", max_tokens=5)


# ---- api/schema.py and api/graphql_http.py: the shape of variable-coercion errors


@strawberry.input
class Login:
    name: str
    password: str


@strawberry.type
class LoginQuery:
    @strawberry.field
    def login(self, credentials: Login) -> str:
        raise ValueError("resolver failed")


LOGIN = "query ($credentials: Login!) { login(credentials: $credentials) }"
logins = strawberry.Schema(query=LoginQuery)


def test_an_invalid_variable_is_echoed_in_the_shape_schema_py_trims() -> None:
    result = logins.execute_sync(LOGIN, variable_values={"credentials": {"password": "hunter2"}})
    [error] = result.errors or []
    assert _ECHOED_INPUT.match(error.message), (
        "graphql-core's invalid-variable message changed and api/schema.py (_ECHOED_INPUT) no longer removes "
        f"the echoed value (secrets included) from it: {error.message!r}"
    )
    _drop_echoed_input(error)
    assert "hunter2" not in error.message and error.message.startswith("Variable '$credentials' has invalid value: ")


def test_a_variable_that_does_not_coerce_is_a_request_error() -> None:
    """api/graphql_http.py answers 400 (graphql-response+json) when nothing executed: no data,
    and errors without a path (as graphql-core reports variables that do not coerce)."""
    bad = logins.execute_sync(LOGIN, variable_values={"credentials": {"password": "x"}})
    assert _is_request_error(bad), (
        f"graphql-core now reports a variable coercion error with data or a path: {bad}; revisit "
        "_is_request_error in api/graphql_http.py"
    )
    failed = logins.execute_sync(LOGIN, variable_values={"credentials": {"name": "n", "password": "x"}})
    assert failed.errors and not _is_request_error(failed)  # a field error is an execution error
