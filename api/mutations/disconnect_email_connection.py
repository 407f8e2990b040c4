"""disconnectEmailConnection: stop all sync of the caller's mailbox and erase its tokens."""

from __future__ import annotations

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.types.email_connection import EmailConnection, email_connection_from_row
from api.types.user_errors import EmailConnectionError, service_errors_as


@strawberry.type(description="Result of disconnectEmailConnection.")
class DisconnectEmailConnectionPayload:
    email_connection: EmailConnection | None = strawberry.field(
        default=None, description="The connection, now disconnected."
    )
    user_errors: list[EmailConnectionError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )


@service_errors_as(DisconnectEmailConnectionPayload, EmailConnectionError)
async def disconnect_email_connection(info: Info) -> DisconnectEmailConnectionPayload:

    viewer = info.context.require_user()
    connection = await info.context.services.connections.disconnect_connection(
        sub_account_id=viewer.sub_account_id, user_id=viewer.user_id
    )
    # Reloaded through the read path, which selects display columns only.
    reloaded = await load_as(info.context.loaders.connection, connection.id, email_connection_from_row)
    return DisconnectEmailConnectionPayload(email_connection=reloaded)
