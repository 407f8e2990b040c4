"""createUser: add a staff member to a sub-account of the caller's agency (agency API keys)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.types.account import Role, User, user_from_row
from api.types.user_errors import AccountError, input_id, service_errors_as


@strawberry.input(description="A new user.")
class CreateUserInput:
    sub_account_id: strawberry.ID = strawberry.field(description="Global id of the sub-account.")
    email: str = strawberry.field(description="The user's email address (unique in the sub-account).")
    name: str | None = strawberry.field(default=None, description="Display name.")
    role: Role = strawberry.field(default=Role.USER, description="Role in the sub-account.")


@strawberry.type(description="Result of createUser.")
class CreateUserPayload:
    user: User | None = strawberry.field(default=None, description="The new user (null on failure).")
    user_errors: list[AccountError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(CreateUserPayload, AccountError)
async def create_user(
    info: Info, input: Annotated[CreateUserInput, strawberry.argument(description="The user.")]
) -> CreateUserPayload:
    viewer = info.context.require_viewer()
    sub_account_id = input_id(input.sub_account_id, "SubAccount", what="sub-account", field="subAccountId")
    user = await info.context.services.accounts.create_user(
        sub_account_id=sub_account_id,
        email=input.email,
        name=input.name,
        role=input.role.value,
        agency_id=viewer.agency_id or "",
    )
    return CreateUserPayload(user=user_from_row(user))
