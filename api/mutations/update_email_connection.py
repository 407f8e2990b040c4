"""updateEmailConnection: switch the caller's connected mailbox to another one.

The "update email" of DESIGN.md rule 8, without disconnecting first: once the new
sign-in completes, new CRM emails go out through the new mailbox and the old one stops
syncing (its threads stay readable). Refused when no mailbox is connected: that is
``startEmailConnection``. The sign-in runs exactly as there (same ``redirectUri`` check
by ``begin_sign_in``) and is finished by ``completeEmailConnection``: the old mailbox
keeps syncing until then.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.mutations.start_email_connection import StartEmailConnectionInput, begin_sign_in
from api.types.user_errors import EmailConnectionError, service_errors_as
from db.repositories import connections as connections_repo
from sync_engine.services.errors import ServiceError


@strawberry.type(description="Result of updateEmailConnection.")
class UpdateEmailConnectionPayload:
    authorization_url: str | None = strawberry.field(
        default=None, description="Send the user's browser here to sign in to the new mailbox."
    )
    user_errors: list[EmailConnectionError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )


@service_errors_as(UpdateEmailConnectionPayload, EmailConnectionError)
async def update_email_connection(
    info: Info,
    input: Annotated[StartEmailConnectionInput, strawberry.argument(description="The new mailbox's provider.")],
) -> UpdateEmailConnectionPayload:
    viewer = info.context.require_user()
    async with info.context.runtime.engine.connect() as conn:
        current = await connections_repo.current_connection_of_user(conn, viewer.sub_account_id, viewer.user_id)
    if current is None or current.status == "disconnected":
        raise ServiceError("NOT_CONNECTED", "no mailbox is connected: use startEmailConnection")
    return UpdateEmailConnectionPayload(authorization_url=await begin_sign_in(info, input))
