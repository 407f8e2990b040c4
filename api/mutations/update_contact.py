"""updateContact: change a contact's email and/or name."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.types.contact import Contact, contact_from_row
from api.types.user_errors import ContactError, input_id, service_errors_as


@strawberry.input(description="Changes to a contact; omitted fields stay as they are.")
class UpdateContactInput:
    id: strawberry.ID = strawberry.field(description="Global id of the contact.")
    email: str | None = strawberry.field(default=strawberry.UNSET, description="New email address.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name; null removes it.")


@strawberry.type(description="Result of updateContact.")
class UpdateContactPayload:
    contact: Contact | None = strawberry.field(default=None, description="The contact as updated (null on failure).")
    user_errors: list[ContactError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(UpdateContactPayload, ContactError)
async def update_contact(
    info: Info, input: Annotated[UpdateContactInput, strawberry.argument(description="The changes.")]
) -> UpdateContactPayload:
    viewer = info.context.require_member()
    contact_id = input_id(input.id, "Contact", what="contact", field="id")
    email = input.email if input.email not in (strawberry.UNSET, None) else None
    name_given = input.name is not strawberry.UNSET
    contact = await info.context.services.contacts.update_contact(
        sub_account_id=viewer.sub_account_id,
        contact_id=contact_id,
        email=email,
        name=input.name if name_given and input.name is not None else None,
        clear_name=name_given and input.name is None,
    )
    info.context.shared_reads_changed()
    return UpdateContactPayload(contact=contact_from_row(contact))
