"""Sync skips: messages deliberately not synced, with the reason ("why didn't my email sync?")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.ids import to_global_id
from api.types.email_connection import EmailConnection, email_connection_from_row
from api.types.node import Node


@strawberry.type(description="A mailbox message that was not synced, and why.")
class SyncSkip(Node):
    reason: str = strawberry.field(
        description="Machine-readable reason, e.g. an attachment too large or of a type that is not allowed."
    )
    detail: str | None = strawberry.field(description="Human-readable detail (which attachment, which limit).")
    subject: str | None = strawberry.field(description="Subject of the skipped message.")
    from_email: str | None = strawberry.field(description="Sender of the skipped message.")
    sent_at: datetime | None = strawberry.field(description="When the skipped message was sent.")
    created_at: datetime = strawberry.field(description="When the skip was recorded.")
    db_id: strawberry.Private[uuid.UUID]
    connection_db_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The mailbox the message was in.")
    async def email_connection(self, info: Info) -> EmailConnection | None:
        return await load_as(info.context.loaders.connection, self.connection_db_id, email_connection_from_row)


def sync_skip_from_row(row: Any) -> SyncSkip:
    return SyncSkip(
        id=strawberry.ID(to_global_id("SyncSkip", row.id)),
        # The column loads a SkipReason; the field is a plain String (str() gives its value).
        reason=str(row.reason),
        detail=row.detail,
        subject=row.subject,
        from_email=row.from_email,
        sent_at=row.sent_at,
        created_at=row.created_at,
        db_id=row.id,
        connection_db_id=row.connection_id,
    )
