"""updateContact: change a contact's email and/or name."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.ids import parse_global_id
from api.types.contact import Contact, contact_from_row
from api.types.user_errors import ContactError, user_error, user_errors
from sync_engine.services import contacts as contact_service
from sync_engine.services.errors import ServiceError


@strawberry.input(description="Changes to a contact; omitted fields stay as they are.")
class UpdateContactInput:
    id: strawberry.ID = strawberry.field(description="Global id of the contact.")
    email: str | None = strawberry.field(default=strawberry.UNSET, description="New email address.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name; null removes it.")


@strawberry.type(description="Result of updateContact.")
class UpdateContactPayload:
    contact: Contact | None = strawberry.field(description="The contact as updated (null on failure).")
    user_errors: list[ContactError] = strawberry.field(description="Why it failed, if it did.")


async def update_contact(
    info: Info, input: Annotated[UpdateContactInput, strawberry.argument(description="The changes.")]
) -> UpdateContactPayload:
    viewer = info.context.require_member()
    contact_id = parse_global_id(input.id, "Contact")
    if contact_id is None:
        return UpdateContactPayload(
            contact=None, user_errors=[user_error(ContactError, "NOT_FOUND", "contact not found", "id")]
        )
    email = input.email if input.email not in (strawberry.UNSET, None) else None
    name_given = input.name is not strawberry.UNSET
    try:
        contact = await contact_service.update_contact(
            info.context.runtime,
            sub_account_id=viewer.sub_account_id,
            contact_id=contact_id,
            email=email,
            name=input.name if name_given and input.name is not None else None,
            clear_name=name_given and input.name is None,
        )
    except ServiceError as exc:
        return UpdateContactPayload(contact=None, user_errors=user_errors(ContactError, exc))
    info.context.shared_reads_changed()
    return UpdateContactPayload(contact=contact_from_row(contact), user_errors=[])
