"""deleteContact: remove a contact; its threads stay, without a contact."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.types.user_errors import ContactError, input_id, service_errors_as


@strawberry.input(description="The contact to delete.")
class DeleteContactInput:
    id: strawberry.ID = strawberry.field(description="Global id of the contact.")


@strawberry.type(description="Result of deleteContact.")
class DeleteContactPayload:
    deleted_contact_id: strawberry.ID | None = strawberry.field(
        default=None, description="Global id of the deleted contact."
    )
    user_errors: list[ContactError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(DeleteContactPayload, ContactError)
async def delete_contact(
    info: Info, input: Annotated[DeleteContactInput, strawberry.argument(description="The contact.")]
) -> DeleteContactPayload:
    viewer = info.context.require_member()
    contact_id = input_id(input.id, "Contact", what="contact", field="id")
    await info.context.services.contacts.delete_contact(
        sub_account_id=viewer.sub_account_id, contact_id=contact_id
    )
    info.context.shared_reads_changed()
    return DeleteContactPayload(deleted_contact_id=input.id)
