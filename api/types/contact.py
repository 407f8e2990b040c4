"""Contacts: the sub-account's customers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import strawberry

from api.ids import to_global_id
from api.types.enums import graphql_enum
from api.types.node import Node
from vocabulary import ContactSource

graphql_enum(ContactSource, description="How a contact came to exist.", values={
    ContactSource.CRM: "Created in the CRM or through the API.",
    ContactSource.BCC: "Created by the auto-BCC sync address.",
})


@strawberry.type(description="A customer of the sub-account, identified by a unique email address.")
class Contact(Node):
    email: str = strawberry.field(description="Email address (unique in the sub-account, case-insensitively).")
    name: str | None = strawberry.field(description="Display name, if known.")
    source: ContactSource = strawberry.field(description="How the contact was created.")
    created_at: datetime = strawberry.field(description="When the contact was created.")
    db_id: strawberry.Private[Any]


# What a Contact is built from, in this order (see ``contact_columns``).
_COLUMNS = ("id", "email", "name", "source", "created_at")


def contact_from_row(row: Any, prefix: str = "") -> Contact:
    """From a contact row or model object; ``prefix`` names its columns inside a wider row."""
    return contact_from_values([getattr(row, prefix + name) for name in _COLUMNS])


def contact_columns(labels: Sequence[str], prefix: str) -> Callable[[Any], tuple[Any, ...]]:
    """A positional getter of a contact's columns from rows whose columns are ``labels``
    (``prefix`` + name): for hot lists, where attribute lookups on rows add up."""
    index = {label: i for i, label in enumerate(labels)}
    return itemgetter(*(index[prefix + name] for name in _COLUMNS))


def contact_from_values(values: Sequence[Any]) -> Contact:
    id_, email, name, source, created_at = values
    return Contact(
        id=strawberry.ID(to_global_id("Contact", id_)),
        email=email,
        name=name,
        source=ContactSource(source),
        created_at=created_at,
        db_id=id_,
    )
