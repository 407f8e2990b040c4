"""A GraphQL-over-HTTP request, read and type-checked once.

Everything about the request's shape is decided here, before authentication or
execution, and every defect is a ``BadRequest`` (400/413/415) rather than whatever
exception a later stage would raise: a body that is not an object, fields of the wrong
type, invalid UTF-8, lone surrogates (which cannot be encoded back to UTF-8 and would
fail later), JSON nested deeper than any GraphQL variable needs, a missing query.
Multipart bodies (file uploads) are parsed by Strawberry; their ``operations`` object
goes through ``from_mapping`` all the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Deep enough for any input object of the schema; a body nested deeper is an attack.
MAX_JSON_DEPTH = 32


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


def from_json_body(raw: bytes) -> GraphQLRequest:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "the body is not valid UTF-8") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise BadRequest(400, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise BadRequest(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "the body must be a JSON object with a `query` (batches are not supported)")
    return from_mapping(data)


def from_query_params(params: Mapping[str, str]) -> GraphQLRequest:
    data: dict[str, Any] = {"query": params.get("query"), "operationName": params.get("operationName")}
    for name in ("variables", "extensions"):
        raw = params.get(name)
        if raw:
            try:
                data[name] = json.loads(raw)
            except RecursionError:
                raise BadRequest(400, f"`{name}` is nested deeper than {MAX_JSON_DEPTH} levels") from None
            except ValueError:
                raise BadRequest(400, f"`{name}` is not valid JSON") from None
    return from_mapping(data)


def from_mapping(data: Mapping[str, Any]) -> GraphQLRequest:
    query, variables = data.get("query"), data.get("variables")
    operation_name, extensions = data.get("operationName"), data.get("extensions")
    if query is None or query == "":
        raise BadRequest(400, "no GraphQL query found in the request")
    if not isinstance(query, str):
        raise BadRequest(400, "`query` must be a string")
    if not isinstance(variables, (dict, type(None))):
        raise BadRequest(400, "`variables` must be an object or null")
    if not isinstance(operation_name, (str, type(None))):
        raise BadRequest(400, "`operationName` must be a string or null")
    if not isinstance(extensions, (dict, type(None))):
        raise BadRequest(400, "`extensions` must be an object or null")
    _check_values([query, operation_name, variables, extensions])
    return GraphQLRequest(query, variables, operation_name, extensions)


def _check_values(roots: list[Any]) -> None:
    """Every string encodable as UTF-8, nothing nested deeper than ``MAX_JSON_DEPTH``.
    Iterative: a deep value must not exhaust the interpreter's stack here either."""
    stack: list[tuple[Any, int]] = [(value, 0) for value in roots]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise BadRequest(400, f"the request is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(400, "the request contains a lone surrogate (not valid Unicode text)") from None
