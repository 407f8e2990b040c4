"""The root ``Query`` type.

``threads`` is the hot read path: one Core statement for the page (threads with
contact and last message), plain row → type mapping, no per-row queries.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import strawberry

from api.api_keys import list_api_keys
from api.context import Info
from api.dataloaders import load_as
from api.errors import BadUserInput
from api.ids import decode_text_cursor, decode_time_cursor, encode_text_cursor, encode_time_cursor, parse_global_id
from api.node import resolve_node
from api.permissions import IsAdmin, IsMember
from api.sender_queries import resolve_sender, sender_domain_rules
from api.types.account import Viewer, viewer_from_auth
from api.types.contact import Contact, contact_from_row
from api.types.email_connection import EmailConnection, email_connection_from_row
from api.types.node import Node
from api.types.pagination import Connection, connection_from_page, empty_connection, keyset_after
from api.types.sync_skip import SyncSkip, sync_skip_from_row
from api.types.thread import Thread, thread_cursor, thread_from_row
from db.repositories import connections as connections_repo
from db.repositories import contacts, skips, threads
from db.repositories.paging import clamp_page_size

_FIRST = "Page size (default 50, at most 100)."
_AFTER = "Cursor of the item to start after (`pageInfo.endCursor` of the previous page)."
_GLOBAL_ID = strawberry.argument(description="Global id.")


@strawberry.input(description="Narrows the inbox.")
class ThreadFilter:
    contact_id: strawberry.ID | None = strawberry.field(default=None, description="Only threads with this contact.")
    unread_only: bool = strawberry.field(default=False, description="Only threads with unread messages.")
    connection_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only threads of this mailbox connection."
    )


def _filter_id(value: strawberry.ID | None, type_name: str) -> tuple[bool, uuid.UUID | None]:
    """(usable, id): an id that does not decode matches nothing (not an error)."""
    if value is None:
        return True, None
    parsed = parse_global_id(value, type_name)
    return parsed is not None, parsed


@strawberry.type(description="Read entry points. Everything is scoped to the caller's sub-account.")
class Query:
    @strawberry.field(description="The caller (null without credentials).")
    def viewer(self, info: Info) -> Viewer | None:
        v = info.context.viewer
        if v is None:
            return None
        return viewer_from_auth(v.kind, v.role, v.user_id, v.sub_account_id, v.agency_id)

    @strawberry.field(
        description="The caller's current mailbox connection (null if none, or for API keys).",
        permission_classes=[IsMember],
    )
    async def email_connection(self, info: Info) -> EmailConnection | None:
        viewer = info.context.require_member()
        if viewer.user_id is None:
            return None
        async with info.context.runtime.engine.connect() as conn:
            row = await connections_repo.current_connection_of_user(conn, viewer.sub_account_id, viewer.user_id)
        return email_connection_from_row(row) if row is not None else None

    @strawberry.field(
        description="Every user's current mailbox connection in the sub-account (admins and API keys).",
        permission_classes=[IsAdmin],
    )
    async def email_connections(self, info: Info) -> list[EmailConnection] | None:
        viewer = info.context.require_member()
        async with info.context.runtime.engine.connect() as conn:
            rows = await connections_repo.current_connections(conn, viewer.sub_account_id)
        return [email_connection_from_row(row) for row in rows]

    @strawberry.field(
        description="The inbox: threads, most recent message first.", permission_classes=[IsMember]
    )
    async def threads(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
        filter: Annotated[ThreadFilter | None, strawberry.argument(description="Optional narrowing.")] = None,
    ) -> Connection[Thread]:
        viewer = info.context.require_member()
        keyset = keyset_after(after, decode_time_cursor)
        f = filter or ThreadFilter()
        ok_contact, contact_id = _filter_id(f.contact_id, "Contact")
        ok_connection, connection_id = _filter_id(f.connection_id, "EmailConnection")
        if not (ok_contact and ok_connection):
            return empty_connection()
        async with info.context.runtime.engine.connect() as conn:
            page = await threads.list_threads(
                conn,
                viewer.sub_account_id,
                limit=clamp_page_size(first),
                after=keyset,
                contact_id=contact_id,
                connection_id=connection_id,
                unread_only=f.unread_only,
            )
        return connection_from_page(page, thread_from_row, thread_cursor, after=after)

    @strawberry.field(
        description="One thread (null if unknown or of another sub-account).", permission_classes=[IsMember]
    )
    async def thread(self, info: Info, id: Annotated[strawberry.ID, _GLOBAL_ID]) -> Thread | None:
        thread_id = parse_global_id(id, "Thread")
        return await load_as(info.context.loaders.thread, thread_id, thread_from_row)

    @strawberry.field(
        description="Contacts, by email address; `search` matches email or name.", permission_classes=[IsMember]
    )
    async def contacts(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
        search: Annotated[str | None, strawberry.argument(description="Case-insensitive substring.")] = None,
    ) -> Connection[Contact]:
        viewer = info.context.require_member()
        keyset = keyset_after(after, decode_text_cursor)
        if search is not None and len(search) > 200:
            raise BadUserInput("search is longer than 200 characters")
        async with info.context.runtime.engine.connect() as conn:
            page = await contacts.list_contacts(
                conn, viewer.sub_account_id, limit=clamp_page_size(first), after=keyset, search=search
            )
        return connection_from_page(
            page, contact_from_row, lambda r: encode_text_cursor(r.email_normalized, r.id), after=after
        )

    @strawberry.field(
        description="Messages that were not synced, with the reason: the caller's own mailboxes, "
        "or every mailbox of the sub-account for admins.",
        permission_classes=[IsMember],
    )
    async def sync_skips(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
        connection_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only skips of this mailbox connection.")
        ] = None,
    ) -> Connection[SyncSkip]:
        viewer = info.context.require_member()
        keyset = keyset_after(after, decode_time_cursor)
        ok, conn_id = _filter_id(connection_id, "EmailConnection")
        if not ok:
            return empty_connection()
        owner = None if viewer.is_admin else viewer.user_id
        async with info.context.runtime.engine.connect() as conn:
            page = await skips.list_sync_skips(
                conn,
                viewer.sub_account_id,
                limit=clamp_page_size(first),
                after=keyset,
                owner_user_id=owner,
                connection_id=conn_id,
            )
        return connection_from_page(
            page, sync_skip_from_row, lambda r: encode_time_cursor(r.created_at, r.id), after=after
        )

    api_keys = strawberry.field(
        resolver=list_api_keys,
        description="Partner API keys, newest first, revoked ones included (never their secret): those of the "
        "caller's sub-account (admins and sub-account keys), or of the agency and its sub-accounts (agency keys).",
    )
    sender_domain_rules = strawberry.field(
        resolver=sender_domain_rules,
        description="The sub-account's sender rules as they apply to the caller, and its email provider.",
        permission_classes=[IsMember],
    )
    resolve_sender = strawberry.field(
        resolver=resolve_sender,
        description="Preview which sender an email would use, and why (nothing is sent).",
        permission_classes=[IsMember],
    )

    @strawberry.field(
        description="Any object by its global id (null if unknown, of another sub-account, or not visible).",
        permission_classes=[IsMember],
    )
    async def node(self, info: Info, id: Annotated[strawberry.ID, _GLOBAL_ID]) -> Node | None:
        return await resolve_node(info, id)
