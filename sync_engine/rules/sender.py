"""Which service a CRM email leaves through (DESIGN.md rule 10). Pure."""

from __future__ import annotations

import enum


class EmailKind(str, enum.Enum):
    INDIVIDUAL = "individual"
    BULK = "bulk"
    WORKFLOW = "workflow"


class SenderRoute(str, enum.Enum):
    MAILBOX = "mailbox"  # the user's connected mailbox; the thread syncs
    SUB_ACCOUNT = "sub_account"  # the sub-account's SMTP relay; never synced


def route_for(kind: EmailKind, connected_address: str | None, bulk_from: str | None = None) -> SenderRoute:
    if kind is EmailKind.WORKFLOW or connected_address is None:
        return SenderRoute.SUB_ACCOUNT
    if kind is EmailKind.BULK:
        same = bulk_from is not None and bulk_from.strip().lower() == connected_address.strip().lower()
        return SenderRoute.MAILBOX if same else SenderRoute.SUB_ACCOUNT
    return SenderRoute.MAILBOX
