"""Contacts: the sub-account's customers."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry

from api.ids import to_global_id
from api.types.node import Node


@strawberry.enum(description="How a contact came to exist.")
class ContactSource(enum.Enum):
    CRM = strawberry.enum_value("crm", description="Created in the CRM or through the API.")
    BCC = strawberry.enum_value("bcc", description="Created by the auto-BCC sync address.")


@strawberry.type(description="A customer of the sub-account, identified by a unique email address.")
class Contact(Node):
    email: str = strawberry.field(description="Email address (unique in the sub-account, case-insensitively).")
    name: str | None = strawberry.field(description="Display name, if known.")
    source: ContactSource = strawberry.field(description="How the contact was created.")
    created_at: datetime = strawberry.field(description="When the contact was created.")
    db_id: strawberry.Private[Any]


def contact_from_row(row: Any, prefix: str = "") -> Contact:
    """From a contact row; ``prefix`` names its columns inside a wider row (``c_`` of an inbox row)."""

    def col(name: str) -> Any:
        return getattr(row, prefix + name)

    return Contact(
        id=strawberry.ID(to_global_id("Contact", col("id"))),
        email=col("email"),
        name=col("name"),
        source=ContactSource.BCC if col("source") == "bcc" else ContactSource.CRM,
        created_at=col("created_at"),
        db_id=col("id"),
    )
