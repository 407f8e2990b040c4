"""A bulk email and its deliveries (one per recipient, each with its own result)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.ids import to_global_id
from api.types.enums import graphql_enum
from api.types.message import Message, MessageStatus, message_from_row
from api.types.node import Node
from api.types.pagination import Connection, keyset_after, make_connection
from api.types.sending import RouteReason, SenderRoute
from db.repositories import bulk_sends
from db.repositories.paging import clamp_page_size
from vocabulary import BulkSendStatus

graphql_enum(BulkSendStatus, description="Progress of a bulk email.", values={
    BulkSendStatus.QUEUED: "Recorded; no delivery has finished yet.",
    BulkSendStatus.SENDING: "Deliveries are going out, paced to the route's limits.",
    BulkSendStatus.COMPLETED: "Every delivery has its final result.",
})


@strawberry.type(description="One recipient's delivery of a bulk email.")
class BulkDelivery:
    recipient: str = strawberry.field(description="The contact's address.")
    status: MessageStatus = strawberry.field(description="The delivery's state.")
    status_detail: str | None = strawberry.field(description="Why it failed (or is uncertain), when it did.")
    attempts: int = strawberry.field(description="Send attempts so far.")
    message_db_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The message recorded for this recipient (in its own thread).")
    async def message(self, info: Info) -> Message | None:
        return await load_as(info.context.loaders.message, self.message_db_id, message_from_row)


@strawberry.type(description="A bulk email: the same email to many contacts, one delivery each.")
class BulkSend(Node):
    status: BulkSendStatus = strawberry.field(description="Progress.")
    route: SenderRoute = strawberry.field(description="Where the deliveries leave through.")
    reason: RouteReason = strawberry.field(description="Why that route.")
    from_email: str = strawberry.field(description="The From address of the deliveries.")
    subject: str = strawberry.field(description="Subject line.")
    total: int = strawberry.field(description="Recipients (one delivery each).")
    sent_count: int = strawberry.field(
        description="Deliveries handed to the provider (including any whose confirmation was lost: UNCERTAIN)."
    )
    failed_count: int = strawberry.field(description="Deliveries refused for good.")
    created_at: datetime = strawberry.field(description="When it was queued.")
    completed_at: datetime | None = strawberry.field(description="When the last delivery finished.")
    db_id: strawberry.Private[uuid.UUID]
    sub_account_db_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="Deliveries still waiting to go out.")
    def pending_count(self) -> int:
        return max(0, self.total - self.sent_count - self.failed_count)

    @strawberry.field(description="The deliveries, in recipient order.")
    async def deliveries(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size (default 50, at most 100).")] = None,
        after: Annotated[str | None, strawberry.argument(description="`pageInfo.endCursor` of the previous page.")] = None,
    ) -> Connection[BulkDelivery]:
        after_id = keyset_after(after, _decode_cursor)
        limit = clamp_page_size(first)
        async with info.context.runtime.engine.connect() as conn:
            rows = await bulk_sends.bulk_deliveries(conn, self.sub_account_db_id, self.db_id, limit=limit, after=after_id)
        page, has_next = rows[:limit], len(rows) > limit
        nodes = [BulkDelivery(recipient=(r.to_addresses or [{}])[0].get("email", ""), status=MessageStatus(r.status),
                              status_detail=r.error, attempts=r.attempts, message_db_id=r.message_id) for r in page]
        return make_connection(nodes, [str(r.message_id) for r in page], has_next=has_next, had_cursor=after is not None)


def _decode_cursor(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def bulk_send_from_row(row: Any) -> BulkSend:
    return BulkSend(
        id=strawberry.ID(to_global_id("BulkSend", row.id)),
        status=BulkSendStatus(row.status),
        route=SenderRoute(row.route), reason=RouteReason(row.route_reason), from_email=row.from_email,
        subject=row.subject, total=row.total, sent_count=row.sent_count, failed_count=row.failed_count,
        created_at=row.created_at, completed_at=row.completed_at, db_id=row.id, sub_account_db_id=row.sub_account_id,
    )


async def load_bulk_send(info: Info, bulk_send_id: uuid.UUID | None) -> BulkSend | None:
    if bulk_send_id is None:
        return None
    viewer = info.context.require_member()
    async with info.context.runtime.engine.connect() as conn:
        # Admins and API keys see every bulk send of the sub-account; a user sees their own.
        rows = await bulk_sends.bulk_sends_by_ids(conn, viewer.sub_account_id, [bulk_send_id],
                                               owner_user_id=None if viewer.is_admin else viewer.user_id)
    return bulk_send_from_row(rows[0]) if rows else None


@strawberry.enum(description="What happened to a bulk email.")
class BulkSendEventType(enum.Enum):
    PROGRESS = strawberry.enum_value("progress", description="Its state now (first on subscribe, then after "
                                     "each delivery's result).")
    COMPLETED = strawberry.enum_value("completed", description="Every delivery has its result; the stream ends.")


@strawberry.type(description="A bulk email's progress.")
class BulkSendEvent:
    type: BulkSendEventType = strawberry.field(description="What happened.")
    occurred_at: datetime = strawberry.field(description="When the state was read.")
    bulk_send: BulkSend = strawberry.field(description="The bulk email, with its counters at that moment.")
