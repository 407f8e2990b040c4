"""sendWorkflowEmail: an automation's email (partner apps' workflows, API keys welcome).

Always through the sub-account's email provider: never in a mailbox, never synced
(DESIGN.md rule 10). It is still recorded in the CRM, in a thread with the contact.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.mutations.send_email import SendEmailInput, SendEmailPayload, send_request_from, sent_payload
from api.types.user_errors import SendEmailError, input_id, service_errors_as
from sync_engine.services.errors import ServiceError


@strawberry.input(description="A workflow email: the fields of `SendEmailInput` (recipients must be contacts; "
                  "with `threadId` it is recorded in that thread), and whose workflow it is.")
class SendWorkflowEmailInput(SendEmailInput):
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The user the workflow runs for (the thread's owner); defaults to the caller "
        "when the caller is a user. Only admins and API keys may name another user."
    )


@strawberry.type(description="Result of sendWorkflowEmail.")
class SendWorkflowEmailPayload(SendEmailPayload):
    pass


@service_errors_as(SendWorkflowEmailPayload, SendEmailError)
async def send_workflow_email(
    info: Info, input: Annotated[SendWorkflowEmailInput, strawberry.argument(description="The email.")]
) -> SendWorkflowEmailPayload:
    viewer = info.context.require_member()
    user_id = viewer.user_id
    if input.user_id is not None:
        user_id = input_id(input.user_id, "User", what="user", field="userId")
        if user_id != viewer.user_id and not viewer.is_admin:
            raise ServiceError("FORBIDDEN", "only admins and API keys may send for another user", "userId")
    request = send_request_from(input)
    sent = await info.context.services.sending.send_workflow_email(sub_account_id=viewer.sub_account_id, user_id=user_id,
                              request=request, caller=viewer.actor)
    return await sent_payload(info, sent, SendWorkflowEmailPayload)
