"""createSubAccount: a new business under the caller's agency (agency API keys)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.types.account import SubAccount, sub_account_from_row
from api.types.user_errors import AccountError, service_errors_as
from sync_engine.services.errors import ServiceError


@strawberry.input(description="A new sub-account.")
class CreateSubAccountInput:
    name: str = strawberry.field(description="Name of the business.")
    agency_id: str | None = strawberry.field(
        default=None, description="The agency; defaults to (and must be) the API key's agency."
    )


@strawberry.type(description="Result of createSubAccount.")
class CreateSubAccountPayload:
    sub_account: SubAccount | None = strawberry.field(
        default=None, description="The new sub-account, with its BCC sync address."
    )
    user_errors: list[AccountError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(CreateSubAccountPayload, AccountError)
async def create_sub_account(
    info: Info, input: Annotated[CreateSubAccountInput, strawberry.argument(description="The sub-account.")]
) -> CreateSubAccountPayload:
    viewer = info.context.require_viewer()
    agency_id = viewer.agency_id or ""
    if input.agency_id is not None and input.agency_id != agency_id:
        raise ServiceError("FORBIDDEN", "the key belongs to another agency", "agencyId")
    sub_account = await info.context.services.accounts.create_sub_account(agency_id=agency_id, name=input.name)
    return CreateSubAccountPayload(sub_account=sub_account_from_row(sub_account))
