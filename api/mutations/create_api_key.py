"""createApiKey: mint a partner key; the secret is in the payload and nowhere else, ever.

Agency keys mint keys for a sub-account of their agency, or (without a sub-account)
another agency key; sub-account admins mint keys for their own sub-account.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.auth import ViewerKind
from api.context import Info
from api.errors import Forbidden
from api.types.account import ApiKey, api_key_from_row
from api.types.user_errors import AccountError, input_id, service_errors_as
from sync_engine.services.errors import NotFound


@strawberry.input(description="A new API key.")
class CreateApiKeyInput:
    name: str = strawberry.field(description="A name to recognise the key by.")
    sub_account_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The sub-account the key acts in; omitted by an agency key, the new key is an agency key.",
    )


@strawberry.type(description="Result of createApiKey.")
class CreateApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description="The key's metadata.")
    key: str | None = strawberry.field(
        default=None, description="The secret key. Shown only in this response: store it now."
    )
    user_errors: list[AccountError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(CreateApiKeyPayload, AccountError)
async def create_api_key(
    info: Info, input: Annotated[CreateApiKeyInput, strawberry.argument(description="The key.")]
) -> CreateApiKeyPayload:
    viewer = info.context.require_viewer()
    sub_account_id = None
    if input.sub_account_id is not None:
        sub_account_id = input_id(input.sub_account_id, "SubAccount", what="sub-account", field="subAccountId")
    accounts = info.context.services.accounts
    if viewer.kind is ViewerKind.AGENCY_KEY:
        row, key = await accounts.create_api_key(
            name=input.name, sub_account_id=sub_account_id, agency_id=viewer.agency_id
        )
    else:
        if not viewer.is_admin or viewer.sub_account_id is None:
            raise Forbidden("this needs the admin role")
        if sub_account_id not in (None, viewer.sub_account_id):
            raise NotFound("sub-account", "subAccountId")
        row, key = await accounts.create_api_key(name=input.name, sub_account_id=viewer.sub_account_id)
    return CreateApiKeyPayload(api_key=api_key_from_row(row), key=key)
