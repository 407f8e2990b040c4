"""sendEmail: a new thread or a reply from the caller, through their mailbox (synced),
or the sub-account's email provider when they have none (not synced).

The send is queued (outbox) with its thread and message in one transaction by
``sync_engine.services.send``; that service owns the rules (recipients must be
contacts, attachment types by content, sizes, header safety). Here attachments are
only decoded and size-checked as input validation, before any work is done.
"""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.inputs.attachments import AttachmentInput, decode_attachments
from api.types.message import Message, message_from_row
from api.types.thread import Thread, thread_from_row
from api.types.user_errors import SendEmailError, input_id, service_errors_as
from sync_engine.services.send import SendRequest


@strawberry.input(description="An email to send; with `threadId` it is a reply in that thread.")
class SendEmailInput:
    to: list[str] = strawberry.field(description="Recipients: email addresses of contacts.")
    cc: list[str] = strawberry.field(default_factory=list, description="Carbon-copy recipients.")
    bcc: list[str] = strawberry.field(default_factory=list, description="Blind carbon-copy recipients.")
    subject: str = strawberry.field(description="Subject line.")
    html: str | None = strawberry.field(default=None, description="HTML body.")
    text: str | None = strawberry.field(default=None, description="Plain-text body.")
    thread_id: strawberry.ID | None = strawberry.field(default=None, description="Reply in this thread.")
    attachments: list[AttachmentInput] = strawberry.field(
        default_factory=list, description="Attachments (JPG, PNG, MP4, MPEG, ZIP, RAR, PDF, DOC(X), TXT; 3 MB each)."
    )
    idempotency_key: str = strawberry.field(
        description="A key of the client's choice, unique per email (e.g. a UUID). The same key from the same caller "
        "within 24 hours answers with the first result and never sends a second email."
    )


@strawberry.type(description="Result of sendEmail.")
class SendEmailPayload:
    message: Message | None = strawberry.field(default=None, description="The queued message.")
    thread: Thread | None = strawberry.field(
        default=None, description="The thread it belongs to (new or replied to)."
    )
    user_errors: list[SendEmailError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


def send_request_from(input: Any) -> SendRequest:
    """The service request of a send input (``SendEmailInput`` or an input with the same
    fields, like ``SendWorkflowEmailInput``); attachments decoded, the thread id parsed."""
    thread_id = None
    if input.thread_id is not None:
        thread_id = input_id(input.thread_id, "Thread", what="thread", field="threadId")
    return SendRequest(
        subject=input.subject,
        html=input.html,
        text=input.text,
        to=list(input.to),
        cc=list(input.cc),
        bcc=list(input.bcc),
        thread_id=thread_id,
        attachments=decode_attachments(input.attachments),
        idempotency_key=input.idempotency_key,
    )


async def sent_payload(info: Info, sent: Any, payload_type: Any) -> Any:
    info.context.shared_reads_changed()
    loaders = info.context.loaders
    return payload_type(
        message=await load_as(loaders.message, sent.id, message_from_row),
        thread=await load_as(loaders.thread, sent.thread_id, thread_from_row),
    )


@service_errors_as(SendEmailPayload, SendEmailError)
async def send_email(
    info: Info, input: Annotated[SendEmailInput, strawberry.argument(description="The email.")]
) -> SendEmailPayload:
    viewer = info.context.require_user()
    request = send_request_from(input)
    sent = await info.context.services.sending.send_email(sub_account_id=viewer.sub_account_id, user_id=viewer.user_id,
                              request=request, caller=viewer.actor)
    return await sent_payload(info, sent, SendEmailPayload)
