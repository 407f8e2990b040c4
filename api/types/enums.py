"""The ``vocabulary``'s enums as GraphQL enums.

The schema exposes the vocabulary's classes themselves, not copies: a value loaded from
a row, decided by a service or taken from a GraphQL argument is one type everywhere, and
a member added to the vocabulary cannot be forgotten here (``graphql_enum`` wants a
description for every member). GraphQL names the values by the members' names
(``REAUTH_REQUIRED``); the stored values never appear in the schema.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import TypeVar

import strawberry
from strawberry.types.enum import StrawberryEnumDefinition

E = TypeVar("E", bound=enum.StrEnum)


def graphql_enum(cls: type[E], *, description: str, values: Mapping[E, str], name: str | None = None) -> type[E]:
    """Register ``cls`` as the GraphQL enum ``name`` (default: the class's name), with
    ``values`` describing each of its members. A class is registered once: a second
    registration would silently replace the first one's name and descriptions."""
    if hasattr(cls, "__strawberry_definition__"):
        raise TypeError(f"{cls.__name__} is already a GraphQL enum")
    missing, unknown = set(cls) - set(values), set(values) - set(cls)
    if missing or unknown:
        raise TypeError(f"descriptions of {cls.__name__} do not match its members: missing {sorted(missing)}, "
                        f"unknown {sorted(unknown)}")
    strawberry.enum(cls, name=name, description=description)
    definition: StrawberryEnumDefinition = cls.__strawberry_definition__  # type: ignore[attr-defined]  # set just above
    definition.values = [dataclasses.replace(value, description=values[cls(value.value)])
                         for value in definition.values]
    return cls
