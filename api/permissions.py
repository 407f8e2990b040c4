"""Permission classes for root fields. They raise our safe errors so the client sees
``UNAUTHENTICATED`` (no credentials) apart from ``FORBIDDEN`` (wrong kind or role)."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from api.auth import ViewerKind
from api.context import Info
from api.errors import Forbidden


class IsMember(BasePermission):
    """A user of a sub-account, or a sub-account API key."""

    message = "authentication required"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.require_member()
        return True


class IsUser(BasePermission):
    """A signed-in user (the operation acts on *their* mailbox)."""

    message = "this needs a user token"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.require_user()
        return True


class IsAdmin(BasePermission):
    """A sub-account admin: a user with the admin role, or a sub-account API key."""

    message = "this needs the admin role"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = info.context.require_member()
        if not viewer.is_admin:
            raise Forbidden("this needs the admin role")
        return True


class IsAgencyKey(BasePermission):
    """An agency API key: the agency administration mutations."""

    message = "this needs an agency API key"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = info.context.require_viewer()
        if viewer.kind is not ViewerKind.AGENCY_KEY:
            raise Forbidden("this needs an agency API key")
        return True
