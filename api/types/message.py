"""Messages of a thread, their addresses and attachment metadata.

List rows carry no bodies: ``html``/``text`` are fetched through a batch loader only
when a query asks for them, so an inbox page never drags message bodies along.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from api.context import Info
from api.ids import to_global_id
from api.types.node import Node

if TYPE_CHECKING:
    from api.types.thread import Thread


@strawberry.enum(description="Whether the message was received or sent by the sub-account's user.")
class MessageDirection(enum.Enum):
    INBOUND = strawberry.enum_value("inbound", description="Received from a contact.")
    OUTBOUND = strawberry.enum_value("outbound", description="Sent by the user (from the CRM or the mailbox).")


@strawberry.enum(description="Delivery state of a message.")
class MessageStatus(enum.Enum):
    QUEUED = strawberry.enum_value("queued", description="A CRM send waiting in the outbox.")
    SENT = strawberry.enum_value("sent", description="A CRM send accepted by the provider.")
    FAILED = strawberry.enum_value("failed", description="A CRM send the provider refused for good.")
    SYNCED = strawberry.enum_value("synced", description="Read from the mailbox.")


@strawberry.enum(description="Where a message was written.")
class MessageOrigin(enum.Enum):
    CRM = strawberry.enum_value("crm", description="Written in the CRM and sent through the mailbox.")
    MAILBOX = strawberry.enum_value("mailbox", description="Written or received in the mailbox.")


@strawberry.type(description="An email address with its optional display name.")
class EmailAddress:
    email: str = strawberry.field(description="The address.")
    name: str | None = strawberry.field(description="The display name, if any.")


@strawberry.type(description="Metadata of a file attached to a message (the content is not served here).")
class Attachment:
    id: strawberry.ID = strawberry.field(description="Opaque identifier of the attachment.")
    filename: str = strawberry.field(description="File name as sent.")
    content_type: str = strawberry.field(description="MIME type, checked against the content.")
    size: int = strawberry.field(description="Size in bytes.")


def _addresses(raw: list[dict[str, Any]] | None) -> list[EmailAddress]:
    return [EmailAddress(email=a.get("email", ""), name=a.get("name")) for a in raw or ()]


@strawberry.type(description="One email of a thread.")
class Message(Node):
    direction: MessageDirection = strawberry.field(description="Received or sent.")
    origin: MessageOrigin = strawberry.field(description="Written in the CRM or in the mailbox.")
    status: MessageStatus = strawberry.field(description="Delivery state.")
    subject: str = strawberry.field(description="Subject line.")
    from_: EmailAddress | None = strawberry.field(name="from", description="Sender.")
    snippet: str = strawberry.field(description="The first words of the text, for previews.")
    is_read: bool = strawberry.field(description="Read state, kept in sync with the mailbox.")
    deleted_in_mailbox: bool = strawberry.field(
        description="True when the message was deleted in the mailbox; the CRM keeps it."
    )
    sent_at: datetime | None = strawberry.field(description="When it was sent (null while queued).")
    created_at: datetime = strawberry.field(description="When the CRM recorded it.")
    status_detail: str | None = strawberry.field(description="Why a CRM send failed, when it did.")
    db_id: strawberry.Private[uuid.UUID]
    thread_db_id: strawberry.Private[uuid.UUID]
    raw_to: strawberry.Private[list[dict[str, Any]] | None]
    raw_cc: strawberry.Private[list[dict[str, Any]] | None]
    raw_bcc: strawberry.Private[list[dict[str, Any]] | None]
    # Bodies, when the row that built this message carried them.
    has_bodies: strawberry.Private[bool]
    raw_html: strawberry.Private[str | None]
    raw_text: strawberry.Private[str | None]

    @strawberry.field(description="Recipients.")
    def to(self) -> list[EmailAddress]:
        return _addresses(self.raw_to)

    @strawberry.field(description="Carbon-copy recipients.")
    def cc(self) -> list[EmailAddress]:
        return _addresses(self.raw_cc)

    @strawberry.field(description="Blind carbon-copy recipients (known for messages the user sent).")
    def bcc(self) -> list[EmailAddress]:
        return _addresses(self.raw_bcc)

    @strawberry.field(description="HTML body, sanitized before it was stored.")
    async def html(self, info: Info) -> str | None:
        if self.has_bodies:
            return self.raw_html
        row = await info.context.loaders.message_body.load(self.db_id)
        return row.html if row is not None else None

    @strawberry.field(description="Plain-text body.")
    async def text(self, info: Info) -> str | None:
        if self.has_bodies:
            return self.raw_text
        row = await info.context.loaders.message_body.load(self.db_id)
        return row.text if row is not None else None

    @strawberry.field(description="Attachments (metadata only).")
    async def attachments(self, info: Info) -> list[Attachment]:
        rows = await info.context.loaders.attachments.load(self.db_id)
        return [
            Attachment(
                id=strawberry.ID(to_global_id("Attachment", r.id)),
                filename=r.filename,
                content_type=r.content_type,
                size=r.size,
            )
            for r in rows
        ]

    @strawberry.field(description="The thread the message belongs to.")
    async def thread(self, info: Info) -> Annotated[Thread, strawberry.lazy("api.types.thread")] | None:
        from api.types.thread import thread_from_row

        row = await info.context.loaders.thread.load(self.thread_db_id)
        return thread_from_row(row) if row is not None else None


def message_from_row(row: Any) -> Message:
    """From a message row (unprefixed columns; bodies optional)."""
    has_bodies = "html" in row._fields
    return Message(
        id=strawberry.ID(to_global_id("Message", row.id)),
        direction=MessageDirection(row.direction),
        origin=MessageOrigin(row.origin),
        status=MessageStatus(row.status),
        subject=row.subject,
        from_=EmailAddress(email=row.from_email, name=row.from_name) if row.from_email else None,
        snippet=row.snippet,
        is_read=row.is_read,
        deleted_in_mailbox=row.deleted_in_mailbox,
        sent_at=row.sent_at,
        created_at=row.created_at,
        status_detail=row.error,
        db_id=row.id,
        thread_db_id=row.thread_id,
        raw_to=row.to_addresses,
        raw_cc=row.cc_addresses,
        raw_bcc=row.bcc_addresses,
        has_bodies=has_bodies,
        raw_html=row.html if has_bodies else None,
        raw_text=row.text if has_bodies else None,
    )


def last_message_from_thread_row(row: Any) -> Message | None:
    """From the ``m_``-prefixed columns of an inbox row (no bodies)."""
    if row.m_id is None:
        return None
    return Message(
        id=strawberry.ID(to_global_id("Message", row.m_id)),
        direction=MessageDirection(row.m_direction),
        origin=MessageOrigin(row.m_origin),
        status=MessageStatus(row.m_status),
        subject=row.m_subject,
        from_=EmailAddress(email=row.m_from_email, name=row.m_from_name) if row.m_from_email else None,
        snippet=row.m_snippet,
        is_read=row.m_is_read,
        deleted_in_mailbox=row.m_deleted_in_mailbox,
        sent_at=row.m_sent_at,
        created_at=row.m_created_at,
        status_detail=row.m_error,
        db_id=row.m_id,
        thread_db_id=row.m_thread_id,
        raw_to=row.m_to_addresses,
        raw_cc=row.m_cc_addresses,
        raw_bcc=row.m_bcc_addresses,
        has_bodies=False,
        raw_html=None,
        raw_text=None,
    )
