"""A leaner graphql-core executor for plain fields.

An inbox page is ~1,000 fields, nearly all of them read straight off an attribute of a
Strawberry object (ids, strings, dates, enums, nested objects and lists). For each,
graphql-core builds a resolve info, goes through Strawberry's default-resolver
wrapper, checks for awaitables, walks ``complete_value``'s type tests and creates a
response path: most of the CPU of an uncached inbox read.

Two shortcuts, both for "plain" fields only: no resolver, no field extension or
permission class, no arguments (Strawberry's "basic" fields), and no middleware at all
(a resolve-hooking extension must see every field):

- a plain leaf of a strictly-coercing type is ``coerce_output_value(getattr(...))``;
- an object whose selected fields are all plain (recursively: objects, lists, leaves,
  ``__typename``) is completed by a completer built once per execution for that
  selection, which walks the value without any per-field machinery.

Neither ever decides anything unusual: on a null where a value is required, a value
that does not coerce, a failed type check, an exception instance, anything raised,
they give up and graphql-core's generic path completes that field or object from
scratch (attribute reads are pure), producing the same errors, paths and null
propagation as without them. When they succeed the result is what the generic path
computes, in the same key order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
)
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.event_results import shared_execution, subscription_share_key
from sync_engine import metrics

# Scalars whose coercion rejects anything that is not a proper value of the type (an
# awaitable or an exception instance included): safe to call before the generic checks.
# A permissive custom scalar (e.g. JSON) must not be added here.
_STRICT_SCALARS = frozenset({"String", "ID", "Int", "Float", "Boolean", "DateTime"})
_STRAWBERRY_DEFINITION = "strawberry-definition"

Completer = Callable[[Any], Any]
Reader = tuple[Callable[[Any, str], Any], str]


class _GiveUp(Exception):
    """Raised by a completer: let graphql-core's generic path handle this value.

    Always a fresh instance (``raise _GiveUp``): a shared one would collect every raise's
    frames in its traceback and keep whole executions alive."""


# Values a strict scalar takes as they are. Anything else (an exception instance, a
# future, an object whose str() would be served as data) goes the generic way.
_PLAIN_SCALAR_VALUES = frozenset({str, int, float, bool, datetime})


def _plain_reader(field_def: GraphQLField | None) -> Reader | None:
    """(resolver, attribute) of a plain field: Strawberry's default resolver reads it."""
    if field_def is None or field_def.args or not getattr(field_def.resolve, "_is_default", False):
        return None
    strawberry_field = field_def.extensions.get(_STRAWBERRY_DEFINITION)
    if strawberry_field is None or not strawberry_field.is_basic_field:
        return None
    return strawberry_field.default_resolver, strawberry_field.python_name


def _strict_leaf(type_: Any) -> bool:
    return isinstance(type_, GraphQLEnumType) or (isinstance(type_, GraphQLScalarType) and type_.name in _STRICT_SCALARS)


def _leaf_completer(type_: GraphQLEnumType | GraphQLScalarType, nullable: bool) -> Completer:
    coerce = type_.coerce_output_value
    scalar = isinstance(type_, GraphQLScalarType)

    def complete(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise _GiveUp
        if scalar and value.__class__ not in _PLAIN_SCALAR_VALUES:
            raise _GiveUp
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise _GiveUp
        return coerced

    return complete


def _list_completer(item: Completer, nullable: bool) -> Completer:
    def complete(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise _GiveUp
        if not isinstance(value, list | tuple):
            raise _GiveUp
        return [item(v) for v in value]

    return complete


def _object_completer(type_name: str, is_type_of: Any, fields: list[tuple[str, Reader | None, Completer | None]]) -> Completer:
    """For a non-null value (``_nullable`` wraps it for a nullable field). Strawberry's own
    ``is_type_of`` ignores the resolve info (hand-written ones never get here)."""

    def complete(value: Any) -> Any:
        if value is None:
            raise _GiveUp
        if isinstance(value, Exception) or (is_type_of is not None and not is_type_of(value, None)):
            raise _GiveUp
        result = {}
        for response_name, reader, sub in fields:
            if reader is None:  # __typename
                result[response_name] = type_name
            else:
                result[response_name] = sub(reader[0](value, reader[1]))  # type: ignore[misc]
        return result

    return complete


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry always passes a manager, empty when no extension hooks ``resolve``.
        manager = self.middleware_manager
        self._shortcuts = manager is None or not manager.middlewares
        # (type, id(field group)) -> (field group kept alive, completer or None), as
        # graphql-core memoizes collected sub-fields: built once per execution.
        self._completers: dict[tuple[Any, int], tuple[Any, Completer | None]] = {}
        self._leaves: dict[tuple[Any, str], tuple[Reader, Completer] | None] = {}

    def build_per_event_executor(self, payload: Any) -> Any:
        """A subscription runs each event on a shallow copy, whose root fields are
        collected anew (new ids): memos keyed by field-list id must not be shared with
        the copy, or they grow with every event for as long as the subscription lives.
        The copy of an event with a shared scope executes once for all subscribers who
        would get the same answer (``api.event_results``)."""
        executor = super().build_per_event_executor(payload)
        executor._completers = {}
        if hasattr(executor, "_relevant_sub_fields"):  # graphql-core's own memo, same growth
            executor._relevant_sub_fields = {}
        scope = getattr(payload, "scope", None)
        if scope is not None:
            if not hasattr(self, "_share_key"):  # once per subscription
                self._share_key = subscription_share_key(
                    self.schema, self.operation, self.fragment_definitions,
                    getattr(self.variable_values, "coerced", self.variable_values),
                    getattr(self.context_value, "viewer", None))
            executor._event_share = (scope.memo, self._share_key) if self._share_key is not None else None
        else:
            executor._event_share = None
        executor._per_event = True
        return executor

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, "_per_event", False):  # a query or mutation, or the subscription itself
            return super().execute_operation(*args, **kwargs)
        share = self._event_share
        if share is None:  # an event this subscriber executes alone
            metrics.SUBSCRIPTION_EXECUTIONS.inc()
            return super().execute_operation(*args, **kwargs)
        memo, key = share
        return shared_execution(memo, key, self.operation, lambda: super(LeanExecutionContext, self)
                                .execute_operation(*args, **kwargs))

    # ---- shortcut 1: plain leaves (fields of objects the completer could not take)

    def _leaf(self, parent_type: GraphQLObjectType, name: str) -> tuple[Reader, Completer] | None:
        key = (parent_type, name)
        if key not in self._leaves:
            field_def = self.schema.get_field(parent_type, name)
            reader = _plain_reader(field_def)
            plan = None
            if reader is not None and field_def is not None:
                nullable = not isinstance(field_def.type, GraphQLNonNull)
                leaf = field_def.type if nullable else field_def.type.of_type  # type: ignore[union-attr]
                if _strict_leaf(leaf):
                    plan = (reader, _leaf_completer(leaf, nullable))
            self._leaves[key] = plan
        return self._leaves[key]

    def execute_field(
        self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Any, position_context: Any
    ) -> Any:
        if self._shortcuts:
            plan = self._leaf(parent_type, field_details_list[0].node.name.value)
            if plan is not None:
                (resolver, attribute), complete = plan
                try:
                    return complete(resolver(source, attribute))
                except Exception:
                    pass
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    # ---- shortcut 2: whole objects whose selection is plain all the way down

    def complete_object_value(
        self, return_type: GraphQLObjectType, field_details_list: Any, info: Any, path: Any, result: Any,
        position_context: Any,
    ) -> Any:
        if self._shortcuts:
            complete = self._object(return_type, field_details_list)
            if complete is not None:
                try:
                    return complete(result)
                except Exception:
                    pass
        return super().complete_object_value(return_type, field_details_list, info, path, result, position_context)

    def _object(self, type_: GraphQLObjectType, field_details_list: Any) -> Completer | None:
        """The completer of a non-null ``type_`` value for this selection, or None."""
        key = (type_, id(field_details_list))
        memo = self._completers.get(key)
        if memo is None:
            memo = self._completers[key] = (field_details_list, self._build_object(type_, field_details_list))
        return memo[1]

    def _build_object(self, type_: GraphQLObjectType, field_details_list: Any) -> Completer | None:
        definition = type_.extensions.get(_STRAWBERRY_DEFINITION)
        if definition is None or getattr(definition, "is_type_of", None) is not None:
            return None  # a hand-written is_type_of may want the resolve info
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(type_, field_details_list)
        if new_defer_usages:
            return None
        fields: list[tuple[str, Reader | None, Completer | None]] = []
        for response_name, sub_details in grouped_field_set.items():
            name = sub_details[0].node.name.value
            if name == "__typename":
                fields.append((response_name, None, None))
                continue
            field_def = self.schema.get_field(type_, name)
            reader = _plain_reader(field_def)
            sub = self._build(field_def.type, sub_details) if reader is not None and field_def is not None else None
            if sub is None:
                return None
            fields.append((response_name, reader, sub))
        return _object_completer(type_.name, type_.is_type_of, fields)

    def _build(self, type_: GraphQLOutputType, field_details_list: Any) -> Completer | None:
        nullable = not isinstance(type_, GraphQLNonNull)
        inner = type_ if nullable else type_.of_type  # type: ignore[union-attr]
        if _strict_leaf(inner):
            return _leaf_completer(inner, nullable)
        if isinstance(inner, GraphQLList):
            item = self._build(inner.of_type, field_details_list)
            return _list_completer(item, nullable) if item is not None else None
        if isinstance(inner, GraphQLObjectType):
            complete = self._object(inner, field_details_list)
            return _nullable(complete) if complete is not None and nullable else complete
        return None  # interfaces, unions, permissive scalars: the generic path


def _nullable(complete: Completer) -> Completer:
    def nullable(value: Any) -> Any:
        return None if value is None else complete(value)

    return nullable


__all__ = ["LeanExecutionContext"]
