"""completeEmailConnection: confirm a mailbox sign-in and connect the mailbox.

The last step of ``startEmailConnection`` / ``updateEmailConnection``: after the
provider's sign-in, the browser comes back to ``redirectUri`` with
``?emailConnectionFlow=<token>``; the app sends that token here with its own
credentials. Only the user (of the same sub-account) who started the sign-in can
complete it, once, within a few minutes; any other token is "not found", whatever the
reason, so tokens cannot be probed.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.types.email_connection import EmailConnection, email_connection_from_row
from api.types.user_errors import EmailConnectionError, service_errors_as


@strawberry.input(description="The sign-in to confirm.")
class CompleteEmailConnectionInput:
    flow_token: str = strawberry.field(
        description="The `emailConnectionFlow` query parameter the browser came back to `redirectUri` with."
    )


@strawberry.type(description="Result of completeEmailConnection.")
class CompleteEmailConnectionPayload:
    email_connection: EmailConnection | None = strawberry.field(
        default=None, description="The connected mailbox, now the caller's current connection."
    )
    user_errors: list[EmailConnectionError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )


@service_errors_as(CompleteEmailConnectionPayload, EmailConnectionError)
async def complete_email_connection(
    info: Info,
    input: Annotated[CompleteEmailConnectionInput, strawberry.argument(description="The flow token.")],
) -> CompleteEmailConnectionPayload:

    viewer = info.context.require_user()
    connection_id = await info.context.services.connections.complete_connection(
        sub_account_id=viewer.sub_account_id, user_id=viewer.user_id,
        flow_token=input.flow_token,
    )
    # Reloaded through the read path, which selects display columns only.
    connection = await load_as(info.context.loaders.connection, connection_id, email_connection_from_row)
    return CompleteEmailConnectionPayload(email_connection=connection)
