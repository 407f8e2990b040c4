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
from api.dataloaders import load_as
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

        return await load_as(info.context.loaders.thread, self.thread_db_id, thread_from_row)


def message_from_row(row: Any, prefix: str = "") -> Message:
    """From a message row, bodies optional; ``prefix`` names its columns inside a wider
    row (``m_`` of an inbox row, which never carries bodies)."""

    def col(name: str) -> Any:
        return getattr(row, prefix + name)

    has_bodies = prefix + "html" in row._fields
    return Message(
        id=strawberry.ID(to_global_id("Message", col("id"))),
        direction=MessageDirection(col("direction")),
        origin=MessageOrigin(col("origin")),
        status=MessageStatus(col("status")),
        subject=col("subject"),
        from_=EmailAddress(email=col("from_email"), name=col("from_name")) if col("from_email") else None,
        snippet=col("snippet"),
        is_read=col("is_read"),
        deleted_in_mailbox=col("deleted_in_mailbox"),
        sent_at=col("sent_at"),
        created_at=col("created_at"),
        status_detail=col("error"),
        db_id=col("id"),
        thread_db_id=col("thread_id"),
        raw_to=col("to_addresses"),
        raw_cc=col("cc_addresses"),
        raw_bcc=col("bcc_addresses"),
        has_bodies=has_bodies,
        raw_html=col("html") if has_bodies else None,
        raw_text=col("text") if has_bodies else None,
    )
