"""Tenancy types: sub-accounts, users, API keys and the viewer."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import strawberry

from api.auth import ViewerKind as AuthViewerKind
from api.context import Info
from api.dataloaders import load_as
from api.ids import to_global_id
from api.types.enums import graphql_enum
from api.types.node import Node
from db.repositories import tenancy
from vocabulary import Role

graphql_enum(Role, description="A user's role in their sub-account.", values={
    Role.ADMIN: "Manages the sub-account (labs flags, all mailboxes).",
    Role.USER: "Staff: their own mailbox and the shared inbox.",
})


@strawberry.enum(description="What kind of credentials the caller used.")
class ViewerKind(enum.Enum):
    USER = strawberry.enum_value("user", description="A CRM user token.")
    SUB_ACCOUNT_KEY = strawberry.enum_value(
        "sub_account_key", description="A partner API key scoped to a sub-account."
    )
    AGENCY_KEY = strawberry.enum_value("agency_key", description="A partner API key scoped to an agency.")


@strawberry.type(description="A business of an agency: its users, contacts and mail.")
class SubAccount(Node):
    name: str = strawberry.field(description="Name of the business.")
    agency_id: str = strawberry.field(description="The agency the sub-account belongs to.")
    bcc_sync_address: str = strawberry.field(
        description="Put this address in Cc or Bcc to make the recipient a contact and sync the thread."
    )
    labs_two_way_sync: bool = strawberry.field(
        description="Labs flag: sync inbound mail from contacts and use the BCC address (off: CRM threads only)."
    )
    created_at: datetime = strawberry.field(description="When the sub-account was created.")


@strawberry.type(description="A staff member of a sub-account.")
class User(Node):
    email: str = strawberry.field(description="The user's email address.")
    name: str | None = strawberry.field(description="Display name.")
    role: Role = strawberry.field(description="Role in the sub-account.")
    created_at: datetime = strawberry.field(description="When the user was created.")


@strawberry.enum(description="Where an API key acts.")
class ApiKeyScope(enum.Enum):
    SUB_ACCOUNT = strawberry.enum_value("sub_account", description="In one sub-account, as its admin.")
    AGENCY = strawberry.enum_value("agency", description="The agency's administration (sub-accounts, users, keys).")


@strawberry.type(description="A partner API key (its secret is only shown once, at creation).")
class ApiKey:
    id: strawberry.ID = strawberry.field(description="Opaque identifier of the key (for `revokeApiKey`).")
    name: str = strawberry.field(description="A name to recognise the key by.")
    prefix: str = strawberry.field(description="The first characters of the key, to tell keys apart.")
    scope: ApiKeyScope = strawberry.field(description="Whether the key acts in a sub-account or for the agency.")
    sub_account_id: strawberry.ID | None = strawberry.field(description="Global id of the sub-account it acts in.")
    agency_id: str | None = strawberry.field(description="The agency, for agency-level keys.")
    created_at: datetime = strawberry.field(description="When the key was created.")
    revoked_at: datetime | None = strawberry.field(
        description="When the key was revoked (it no longer authenticates); null while it is valid."
    )


@strawberry.type(description="The caller: who they are and where they act.")
class Viewer:
    kind: ViewerKind = strawberry.field(description="The kind of credentials used.")
    role: Role = strawberry.field(description="Effective role (API keys act as admins).")
    agency_id: str | None = strawberry.field(description="The agency of an agency-level API key.")
    user_db_id: strawberry.Private[uuid.UUID | None]
    sub_account_db_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The signed-in user (null for API keys).")
    async def user(self, info: Info) -> User | None:
        return await load_as(info.context.loaders.user, self.user_db_id, user_from_row)

    @strawberry.field(description="The sub-account the caller acts in (null for agency keys).")
    async def sub_account(self, info: Info) -> SubAccount | None:
        if self.sub_account_db_id is None:
            return None
        async with info.context.runtime.engine.connect() as conn:
            row = await tenancy.sub_account(conn, self.sub_account_db_id)
        return sub_account_from_row(row) if row is not None else None


def viewer_from_auth(kind: AuthViewerKind, role: str, user_id: Any, sub_account_id: Any, agency_id: Any) -> Viewer:
    return Viewer(
        kind=ViewerKind(kind.value),
        role=Role(role),
        agency_id=agency_id,
        user_db_id=user_id,
        sub_account_db_id=sub_account_id,
    )


def user_from_row(row: Any) -> User:
    return User(
        id=strawberry.ID(to_global_id("User", row.id)),
        email=row.email,
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
    )


def sub_account_from_row(row: Any) -> SubAccount:
    return SubAccount(
        id=strawberry.ID(to_global_id("SubAccount", row.id)),
        name=row.name,
        agency_id=row.agency_id,
        bcc_sync_address=row.bcc_sync_address,
        labs_two_way_sync=row.labs_two_way_sync,
        created_at=row.created_at,
    )


def api_key_from_row(row: Any) -> ApiKey:
    return ApiKey(
        id=strawberry.ID(to_global_id("ApiKey", row.id)),
        name=row.name,
        prefix=row.prefix,
        scope=ApiKeyScope.SUB_ACCOUNT if row.sub_account_id else ApiKeyScope.AGENCY,
        sub_account_id=strawberry.ID(to_global_id("SubAccount", row.sub_account_id)) if row.sub_account_id else None,
        agency_id=row.agency_id,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
