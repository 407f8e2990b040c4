"""deleteContact: remove a contact; its threads stay, without a contact."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.ids import parse_global_id
from api.types.user_errors import ContactError, user_error, user_errors
from sync_engine.services import contacts as contact_service
from sync_engine.services.errors import ServiceError


@strawberry.input(description="The contact to delete.")
class DeleteContactInput:
    id: strawberry.ID = strawberry.field(description="Global id of the contact.")


@strawberry.type(description="Result of deleteContact.")
class DeleteContactPayload:
    deleted_contact_id: strawberry.ID | None = strawberry.field(description="Global id of the deleted contact.")
    user_errors: list[ContactError] = strawberry.field(description="Why it failed, if it did.")


async def delete_contact(
    info: Info, input: Annotated[DeleteContactInput, strawberry.argument(description="The contact.")]
) -> DeleteContactPayload:
    viewer = info.context.require_member()
    contact_id = parse_global_id(input.id, "Contact")
    if contact_id is None:
        return DeleteContactPayload(
            deleted_contact_id=None, user_errors=[user_error(ContactError, "NOT_FOUND", "contact not found", "id")]
        )
    try:
        await contact_service.delete_contact(
            info.context.runtime, sub_account_id=viewer.sub_account_id, contact_id=contact_id
        )
    except ServiceError as exc:
        return DeleteContactPayload(deleted_contact_id=None, user_errors=user_errors(ContactError, exc))
    info.context.shared_reads_changed()
    return DeleteContactPayload(deleted_contact_id=input.id, user_errors=[])
