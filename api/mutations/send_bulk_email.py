"""sendBulkEmail: the same email to many contacts, one delivery each.

Through the caller's mailbox only when `from` is its address; otherwise (blank or
another From) through the sub-account's email provider (DESIGN.md rule 10). Progress:
the `BulkSend` node, and the `bulkSendEvents(bulkSendId)` subscription.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.types.bulk_send import BulkSend, load_bulk_send
from api.types.user_errors import SendEmailError, service_errors_as
from sync_engine.rules.outbound import MAX_BULK_RECIPIENTS
from sync_engine.services.bulk_send import BulkRequest


@strawberry.input(description=f"A bulk email: at most {MAX_BULK_RECIPIENTS} recipients, one delivery each.")
class SendBulkEmailInput:
    recipients: list[str] = strawberry.field(description="Contacts' addresses (duplicates are sent once).")
    from_: str | None = strawberry.field(
        name="from", default=None,
        description="The From address. Your connected mailbox's address sends through it (synced); blank or "
        "another address sends through the sub-account's email provider.",
    )
    subject: str = strawberry.field(description="Subject line.")
    html: str | None = strawberry.field(default=None, description="HTML body.")
    text: str | None = strawberry.field(default=None, description="Plain-text body.")
    idempotency_key: str = strawberry.field(
        description="Unique per bulk email; the same key from the same caller within 24 hours never sends twice."
    )


@strawberry.type(description="Result of sendBulkEmail.")
class SendBulkEmailPayload:
    bulk_send: BulkSend | None = strawberry.field(default=None, description="The queued bulk email.")
    user_errors: list[SendEmailError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(SendBulkEmailPayload, SendEmailError)
async def send_bulk_email(
    info: Info, input: Annotated[SendBulkEmailInput, strawberry.argument(description="The bulk email.")]
) -> SendBulkEmailPayload:
    viewer = info.context.require_user()
    request = BulkRequest(recipients=list(input.recipients), subject=input.subject, html=input.html, text=input.text,
                          from_address=input.from_, idempotency_key=input.idempotency_key)
    bulk = await info.context.services.bulk_sends.send_bulk_email(sub_account_id=viewer.sub_account_id, user_id=viewer.user_id,
                              request=request, caller=viewer.actor)
    info.context.shared_reads_changed()
    return SendBulkEmailPayload(bulk_send=await load_bulk_send(info, bulk.id))
