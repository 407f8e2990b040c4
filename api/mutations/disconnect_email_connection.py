"""disconnectEmailConnection: stop all sync of the caller's mailbox and erase its tokens."""

from __future__ import annotations

import strawberry

from api.context import Info
from api.types.email_connection import EmailConnection
from api.types.user_errors import EmailConnectionError, user_errors
from sync_engine.services.errors import ServiceError


@strawberry.type(description="Result of disconnectEmailConnection.")
class DisconnectEmailConnectionPayload:
    email_connection: EmailConnection | None = strawberry.field(description="The connection, now disconnected.")
    user_errors: list[EmailConnectionError] = strawberry.field(description="Why it failed, if it did.")


async def disconnect_email_connection(info: Info) -> DisconnectEmailConnectionPayload:
    from sync_engine.services.connections import disconnect_connection

    viewer = info.context.require_user()
    try:
        connection = await disconnect_connection(
            info.context.runtime, sub_account_id=viewer.sub_account_id, user_id=viewer.user_id
        )
    except ServiceError as exc:
        return DisconnectEmailConnectionPayload(email_connection=None, user_errors=user_errors(EmailConnectionError, exc))
    return DisconnectEmailConnectionPayload(email_connection=await _reload(info, connection.id), user_errors=[])


async def _reload(info: Info, connection_id: object) -> EmailConnection | None:
    """Reload through the read path, which selects display columns only."""
    from api.types.email_connection import email_connection_from_row

    row = await info.context.loaders.connection.load(connection_id)
    return email_connection_from_row(row) if row is not None else None
