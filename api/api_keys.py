"""``apiKeys``, and whose keys a caller may list and revoke.

Sub-account admins and sub-account API keys: the keys of their sub-account. Agency
keys: the agency's own keys and those of its sub-accounts (an agency key mints those).
Users without the admin role: none (``FORBIDDEN``).
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.auth import Viewer, ViewerKind
from api.context import Info
from api.errors import Forbidden
from api.ids import decode_time_cursor, encode_time_cursor
from api.types.account import ApiKey, api_key_from_row
from api.types.pagination import Connection, connection_from_page, keyset_after
from db.repositories import api_keys
from db.repositories.api_keys import KeyScope
from db.repositories.paging import clamp_page_size


def key_scope(viewer: Viewer) -> KeyScope:
    if viewer.kind is ViewerKind.AGENCY_KEY and viewer.agency_id is not None:
        return KeyScope(agency_id=viewer.agency_id)
    if viewer.sub_account_id is None or not viewer.is_admin:
        raise Forbidden("this needs the admin role")
    return KeyScope(sub_account_id=viewer.sub_account_id)


async def list_api_keys(
    info: Info,
    first: Annotated[int | None, strawberry.argument(description="Page size (default 50, at most 100).")] = None,
    after: Annotated[
        str | None, strawberry.argument(description="Cursor of the key to start after (`pageInfo.endCursor`).")
    ] = None,
) -> Connection[ApiKey]:
    scope = key_scope(info.context.require_viewer())
    keyset = keyset_after(after, decode_time_cursor)
    async with info.context.runtime.engine.connect() as conn:
        page = await api_keys.list_api_keys(conn, scope, limit=clamp_page_size(first), after=keyset)
    return connection_from_page(
        page, api_key_from_row, lambda row: encode_time_cursor(row.created_at, row.id), after=after
    )
