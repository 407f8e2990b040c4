"""Nothing that depends on who asks is reachable from a cached root field: the response
cache serves one member's result to every member of the sub-account."""

from __future__ import annotations

from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLUnionType, build_schema, get_named_type

from api.response_cache import SHARED_ROOT_FIELDS, VIEWER_DEPENDENT_TYPES
from api.schema import schema


def reachable_types(root_fields: frozenset[str]) -> set[str]:
    sdl = build_schema(schema.as_str())
    query = sdl.query_type
    assert query is not None
    seen: set[str] = set()
    pending = [get_named_type(query.fields[name].type) for name in root_fields if name in query.fields]
    while pending:
        named = pending.pop()
        if named.name in seen:
            continue
        seen.add(named.name)
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
            pending.extend(get_named_type(f.type) for f in named.fields.values())
        if isinstance(named, GraphQLInterfaceType):
            pending.extend(sdl.get_possible_types(named))
        if isinstance(named, GraphQLUnionType):
            pending.extend(named.types)
    return seen


def test_no_viewer_dependent_type_is_reachable_from_a_cached_root() -> None:
    reachable = reachable_types(SHARED_ROOT_FIELDS)
    assert {"Thread", "Message", "Contact", "Attachment"} <= reachable  # the walk does reach the rows
    assert reachable & VIEWER_DEPENDENT_TYPES == set()


def test_the_viewer_dependent_types_exist_and_are_caught() -> None:
    names = set(build_schema(schema.as_str()).type_map)
    assert names >= VIEWER_DEPENDENT_TYPES  # a rename must not silently empty the check
    # The walk would see one if a cached root reached it (here: through `node`).
    assert reachable_types(frozenset({"node"})) & VIEWER_DEPENDENT_TYPES
