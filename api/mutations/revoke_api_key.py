"""revokeApiKey: a revoked key stops authenticating at once, everywhere.

HTTP requests look every key up (api/auth.py caches no key), so the next request with
it is a 401 in every API process. WebSocket sessions opened with it are closed (4403):
this process's at once, other processes' at their next revocation check
(api/ws_sessions.py). Revoking a key revoked already answers the key as it is.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.api_keys import key_scope
from api.context import Info
from api.types.account import ApiKey, api_key_from_row
from api.types.user_errors import AccountError, input_id, service_errors_as
from db.repositories import api_keys
from sync_engine.services.errors import NotFound


@strawberry.input(description="The key to revoke.")
class RevokeApiKeyInput:
    id: strawberry.ID = strawberry.field(description="The key's id (`ApiKey.id`).")


@strawberry.type(description="Result of revokeApiKey.")
class RevokeApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description="The revoked key.")
    user_errors: list[AccountError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(RevokeApiKeyPayload, AccountError)
async def revoke_api_key(
    info: Info, input: Annotated[RevokeApiKeyInput, strawberry.argument(description="The key.")]
) -> RevokeApiKeyPayload:
    scope = key_scope(info.context.require_viewer())
    key_id = input_id(input.id, "ApiKey", what="API key", field="id")
    async with info.context.runtime.engine.begin() as conn:
        row = await api_keys.revoke_api_key(conn, scope, key_id)
    if row is None:  # unknown, or another tenant's: indistinguishable on purpose
        raise NotFound("API key", "id")
    info.context.authenticator.sessions.key_revoked(row.id)
    return RevokeApiKeyPayload(api_key=api_key_from_row(row))
