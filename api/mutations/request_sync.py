"""requestSync: ask for a sync pass of the caller's mailbox now."""

from __future__ import annotations

import strawberry

from api.context import Info
from api.mutations.disconnect_email_connection import _reload
from api.types.email_connection import EmailConnection
from api.types.user_errors import EmailConnectionError, user_errors
from sync_engine.services.errors import ServiceError


@strawberry.type(description="Result of requestSync.")
class RequestSyncPayload:
    email_connection: EmailConnection | None = strawberry.field(description="The connection a pass was requested for.")
    user_errors: list[EmailConnectionError] = strawberry.field(description="Why it failed, if it did.")


async def request_sync(info: Info) -> RequestSyncPayload:
    from sync_engine.services.connections import request_sync as request_sync_service

    viewer = info.context.require_user()
    try:
        connection = await request_sync_service(
            info.context.runtime, sub_account_id=viewer.sub_account_id, user_id=viewer.user_id
        )
    except ServiceError as exc:
        return RequestSyncPayload(email_connection=None, user_errors=user_errors(EmailConnectionError, exc))
    return RequestSyncPayload(email_connection=await _reload(info, connection.id), user_errors=[])
