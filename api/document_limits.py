"""Depth, alias and size limits of a GraphQL document, measured in linear time.

strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` walk a fragment again at
every spread, so a chain of fragments that each spread the next one twice costs 2^n
to validate: 20 levels fit in less than 1 KB. Here each definition is walked once and
each fragment is measured once; a spread adds what its fragment measured (counts are
multiplied by the number of times a fragment is spread, depths add the nesting of the
spread). The numbers are the ones strawberry's rules report:

- depth: the longest chain of fields with a selection set; introspection fields
  (``__schema``, ``__type``) end a chain, as in strawberry (GraphiQL's introspection
  query is deeper than any query of ours);
- aliases: aliased fields of the operation, fragments expanded;
- fields: every field of the operation, fragments expanded. It bounds what an
  operation may ask for whatever its depth and aliases (the doubling chain has
  neither), and so the work of validating and executing it.

An operation over a limit aborts validation at once (the other rules do not run), with
one error naming the limit; over HTTP with ``application/json`` that is a 200 with
``errors``, like every validation error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.validation import ValidationRule
from graphql.validation.validate import ValidationAbortedError

# Counts stop growing here: a huge expansion is refused all the same, and the numbers
# stay small integers.
_SATURATION = 1 << 40


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    max_depth: int
    max_aliases: int
    max_fields: int


@dataclass(frozen=True, slots=True)
class Measure:
    """What an operation (or a fragment) selects once its fragments are expanded."""

    depth: int = 0
    aliases: int = 0
    fields: int = 0


@dataclass(slots=True)
class _Walk:
    """One pass over a definition's own selections: its own counts and depth, and the
    fragment spreads it holds with the depth at which each one sits (None inside an
    introspection field, where depth is not counted)."""

    depth: int = 0
    aliases: int = 0
    fields: int = 0
    spreads: list[tuple[str, int | None]] = field(default_factory=list)


def _walk(selection_set: SelectionSetNode, level: int | None, into: _Walk) -> int:
    """Add the selections to ``into``; returns their depth (without spreads). ``level``:
    fields with a selection set above this one. Recursion follows the document's own
    nesting, which the parser (deeper per level than this) has already been through."""
    depth = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            into.fields += 1
            if selection.alias is not None:
                into.aliases += 1
            if selection.selection_set is None:
                continue
            introspection = selection.name.value.startswith("__")
            inner_level = None if introspection or level is None else level + 1
            inner = _walk(selection.selection_set, inner_level, into)
            if not introspection and level is not None:
                depth = max(depth, 1 + inner)
        elif isinstance(selection, InlineFragmentNode):
            depth = max(depth, _walk(selection.selection_set, level, into))
        elif isinstance(selection, FragmentSpreadNode):
            into.spreads.append((selection.name.value, level))
    return depth


def _own(definition: OperationDefinitionNode | FragmentDefinitionNode) -> _Walk:
    walk = _Walk()
    walk.depth = _walk(definition.selection_set, 0, walk)
    return walk


def _combine(walk: _Walk, fragments: dict[str, Measure]) -> Measure:
    depth, aliases, fields = walk.depth, walk.aliases, walk.fields
    for name, level in walk.spreads:
        spread = fragments.get(name)
        if spread is None:  # unknown, or a cycle: graphql-core's own rules report those
            continue
        aliases += spread.aliases
        fields += spread.fields
        if level is not None:
            depth = max(depth, level + spread.depth)
    return Measure(min(depth, _SATURATION), min(aliases, _SATURATION), min(fields, _SATURATION))


def measure_fragments(definitions: Iterable[FragmentDefinitionNode]) -> dict[str, Measure]:
    """Each fragment's measure, every fragment walked once. Fragments are resolved in
    dependency order with an explicit stack (a chain of fragments is as long as the
    document allows, deeper than Python's recursion limit); a spread that closes a
    cycle counts as nothing (``NoFragmentCyclesRule`` refuses the document anyway)."""
    walks = {definition.name.value: _own(definition) for definition in definitions}
    measures: dict[str, Measure] = {}
    in_progress: set[str] = set()
    for root in walks:
        if root in measures:
            continue
        stack = [root]
        while stack:
            name = stack[-1]
            if name not in in_progress:
                in_progress.add(name)
                pending = [
                    spread for spread, _ in walks[name].spreads
                    if spread in walks and spread not in measures and spread not in in_progress
                ]
                if pending:
                    stack.extend(pending)
                    continue
            stack.pop()
            if name not in measures:
                measures[name] = _combine(walks[name], measures)
            in_progress.discard(name)
    return measures


def measure_operations(document: DocumentNode) -> dict[str, Measure]:
    """The measure of every operation of ``document``, by name (``anonymous`` without one)."""
    fragments = measure_fragments(d for d in document.definitions if isinstance(d, FragmentDefinitionNode))
    return {
        d.name.value if d.name else "anonymous": _combine(_own(d), fragments)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    }


def limit_error(limits: DocumentLimits, document: DocumentNode) -> str | None:
    """Why ``document`` is refused, or None. Messages keep strawberry's wording."""
    for name, measure in measure_operations(document).items():
        if measure.depth > limits.max_depth:
            return f"'{name}' exceeds maximum operation depth of {limits.max_depth}"
        if measure.aliases > limits.max_aliases:
            return f"{measure.aliases} aliases found. Allowed: {limits.max_aliases}"
        if measure.fields > limits.max_fields:
            return (
                f"'{name}' selects {measure.fields} fields once its fragments are expanded. "
                f"Allowed: {limits.max_fields}"
            )
    return None


def document_limits_rule(limits: DocumentLimits) -> type[ValidationRule]:
    """A validation rule enforcing ``limits``. Build it once: the validation cache keys
    on the rule classes."""

    class DocumentLimitsRule(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: object) -> None:
            reason = limit_error(limits, node)
            if reason is not None:
                # Stops the whole validation pass (graphql-core reports this error as
                # the last one): the other rules need not look at an oversized document.
                raise ValidationAbortedError(reason)

    return DocumentLimitsRule

