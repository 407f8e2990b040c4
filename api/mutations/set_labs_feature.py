"""setLabsFeature: turn the sub-account's labs flags on or off (admins)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.types.account import SubAccount, sub_account_from_row
from api.types.user_errors import AccountError, service_errors_as


@strawberry.input(description="Labs flags of the sub-account.")
class SetLabsFeatureInput:
    two_way_sync: bool = strawberry.field(
        description="On: inbound mail from contacts starts threads and the BCC address creates contacts. "
        "Off: only CRM-initiated threads sync."
    )


@strawberry.type(description="Result of setLabsFeature.")
class SetLabsFeaturePayload:
    sub_account: SubAccount | None = strawberry.field(default=None, description="The sub-account with its flags.")
    user_errors: list[AccountError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(SetLabsFeaturePayload, AccountError)
async def set_labs_feature(
    info: Info, input: Annotated[SetLabsFeatureInput, strawberry.argument(description="The flags.")]
) -> SetLabsFeaturePayload:
    viewer = info.context.require_member()
    sub_account = await info.context.services.accounts.set_labs_feature(
        sub_account_id=viewer.sub_account_id, two_way_sync=input.two_way_sync
    )
    return SetLabsFeaturePayload(sub_account=sub_account_from_row(sub_account))
