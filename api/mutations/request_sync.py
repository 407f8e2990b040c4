"""requestSync: ask for a sync pass of the caller's mailbox now."""

from __future__ import annotations

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.types.email_connection import EmailConnection, email_connection_from_row
from api.types.user_errors import EmailConnectionError, service_errors_as


@strawberry.type(description="Result of requestSync.")
class RequestSyncPayload:
    email_connection: EmailConnection | None = strawberry.field(
        default=None, description="The connection a pass was requested for."
    )
    user_errors: list[EmailConnectionError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )


@service_errors_as(RequestSyncPayload, EmailConnectionError)
async def request_sync(info: Info) -> RequestSyncPayload:

    viewer = info.context.require_user()
    connection = await info.context.services.connections.request_sync(
        sub_account_id=viewer.sub_account_id, user_id=viewer.user_id
    )
    reloaded = await load_as(info.context.loaders.connection, connection.id, email_connection_from_row)
    return RequestSyncPayload(email_connection=reloaded)
