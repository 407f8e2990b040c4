"""createContact: add a customer to the sub-account."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.types.contact import Contact, contact_from_row
from api.types.user_errors import ContactError, service_errors_as


@strawberry.input(description="A new contact.")
class CreateContactInput:
    email: str = strawberry.field(description="Email address, unique in the sub-account (case-insensitively).")
    name: str | None = strawberry.field(default=None, description="Display name.")


@strawberry.type(description="Result of createContact.")
class CreateContactPayload:
    contact: Contact | None = strawberry.field(default=None, description="The new contact (null on failure).")
    user_errors: list[ContactError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(CreateContactPayload, ContactError)
async def create_contact(
    info: Info, input: Annotated[CreateContactInput, strawberry.argument(description="The contact.")]
) -> CreateContactPayload:
    viewer = info.context.require_member()
    contact = await info.context.services.contacts.create_contact(
        sub_account_id=viewer.sub_account_id, email=input.email, name=input.name
    )
    info.context.shared_reads_changed()
    return CreateContactPayload(contact=contact_from_row(contact))
