"""A user's connected mailbox, as its owner and the sub-account's admins see it.

Built from ``db.repositories.connections`` display rows, which never select token
ciphertext, sync cursors or webhook secrets: there is nothing secret to leak here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.ids import to_global_id
from api.types.enums import graphql_enum
from api.types.node import Node
from vocabulary import ConnectionStatus, Provider

if TYPE_CHECKING:
    from api.types.account import User


EmailProvider = graphql_enum(Provider, name="EmailProvider", description="A mailbox provider.", values={
    Provider.OUTLOOK: "Microsoft 365 / Outlook.com, over Microsoft Graph.",
    Provider.GMAIL: "Google Gmail, over the Gmail API.",
})

EmailConnectionStatus = graphql_enum(
    ConnectionStatus, name="EmailConnectionStatus", description="State of a mailbox connection.", values={
        ConnectionStatus.CONNECTING: "Signed in; the first sync has not finished.",
        ConnectionStatus.ACTIVE: "Connected and up to date.",
        ConnectionStatus.SYNCING: "A sync pass is running.",
        ConnectionStatus.REAUTH_REQUIRED: "The provider revoked access: the user must connect again.",
        ConnectionStatus.ERROR: "Sync is failing; see `statusDetail`.",
        ConnectionStatus.DISCONNECTED: "Disconnected; nothing syncs any more.",
    },
)


@strawberry.type(description="A mailbox connected by a user for two-way sync.")
class EmailConnection(Node):
    provider: Provider = strawberry.field(description="The mailbox provider.")
    address: str = strawberry.field(description="The mailbox address.")
    display_name: str | None = strawberry.field(description="The mailbox owner's display name at the provider.")
    status: ConnectionStatus = strawberry.field(description="Connection state.")
    status_detail: str | None = strawberry.field(description="Human-readable detail of the state (errors).")
    is_current: bool = strawberry.field(
        description="False for a mailbox replaced by a newer connection of the same user (kept for history)."
    )
    last_sync_at: datetime | None = strawberry.field(description="When the last sync pass finished.")
    messages_synced: int = strawberry.field(description="Messages imported from this mailbox so far.")
    confidential_skipped_count: int = strawberry.field(
        description="Messages not synced because they were exchanged with a user of the sub-account (only counted)."
    )
    connected_at: datetime | None = strawberry.field(description="When the user completed the sign-in.")
    disconnected_at: datetime | None = strawberry.field(description="When the mailbox was disconnected, if it was.")
    db_id: strawberry.Private[uuid.UUID]
    user_db_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="Messages skipped with a recorded reason (see `syncSkips`).")
    async def skipped_count(self, info: Info) -> int:
        return await info.context.loaders.skip_count.load(self.db_id)

    @strawberry.field(description="The user who owns the mailbox.")
    async def user(self, info: Info) -> Annotated[User, strawberry.lazy("api.types.account")] | None:
        from api.types.account import user_from_row

        return await load_as(info.context.loaders.user, self.user_db_id, user_from_row)


def email_connection_from_row(row: Any) -> EmailConnection:
    return EmailConnection(
        id=strawberry.ID(to_global_id("EmailConnection", row.id)),
        provider=Provider(row.provider),
        address=row.address,
        display_name=row.display_name,
        status=ConnectionStatus(row.status),
        status_detail=row.status_detail,
        is_current=row.is_current,
        last_sync_at=row.last_sync_at,
        messages_synced=row.messages_synced,
        confidential_skipped_count=row.confidential_skipped,
        connected_at=row.connected_at,
        disconnected_at=row.disconnected_at,
        db_id=row.id,
        user_db_id=row.user_id,
    )
