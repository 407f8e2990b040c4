"""``node(id:)``: global id → object, with the same visibility rules as the lists."""

from __future__ import annotations

from api.context import Info
from api.dataloaders import load_as
from api.ids import from_global_id
from api.types.account import sub_account_from_row, user_from_row
from api.types.bulk_send import load_bulk_send
from api.types.contact import contact_from_row
from api.types.email_connection import email_connection_from_row
from api.types.message import message_from_row
from api.types.node import Node
from api.types.sync_skip import sync_skip_from_row
from api.types.thread import thread_from_row
from db.repositories import skips, tenancy


async def resolve_node(info: Info, global_id: str) -> Node | None:
    parsed = from_global_id(global_id)
    if parsed is None:
        return None
    type_name, id_ = parsed
    ctx = info.context
    viewer = ctx.require_member()
    loaders = ctx.loaders
    if type_name == "Thread":
        return await load_as(loaders.thread, id_, thread_from_row)
    if type_name == "Message":
        return await load_as(loaders.message, id_, message_from_row)
    if type_name == "Contact":
        return await load_as(loaders.contact, id_, contact_from_row)
    if type_name == "User":
        return await load_as(loaders.user, id_, user_from_row)
    if type_name == "EmailConnection":
        row = await loaders.connection.load(id_)
        if row is None or not (viewer.is_admin or row.user_id == viewer.user_id):
            return None
        return email_connection_from_row(row)
    if type_name == "SyncSkip":
        owner = None if viewer.is_admin else viewer.user_id
        async with ctx.runtime.engine.connect() as conn:
            rows = await skips.sync_skips_by_ids(conn, viewer.sub_account_id, [id_], owner_user_id=owner)
        return sync_skip_from_row(rows[0]) if rows else None
    if type_name == "BulkSend":
        return await load_bulk_send(info, id_)
    if type_name == "SubAccount":
        if id_ != viewer.sub_account_id:
            return None
        async with ctx.runtime.engine.connect() as conn:
            row = await tenancy.sub_account(conn, id_)
        return sub_account_from_row(row) if row is not None else None
    return None
