"""Messages of a thread, their addresses and attachment metadata.

List rows carry no bodies: ``html``/``text`` are fetched through a batch loader only
when a query asks for them, so an inbox page never drags message bodies along.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.ids import parse_global_id, to_global_id
from api.types.enums import graphql_enum
from api.types.node import Node
from api.types.sending import EmailKind, RouteReason, SenderRoute
from db.repositories.threads import MESSAGE_SUMMARY_COLUMNS
from sync_engine.services.attachments import signed_download_url
from vocabulary import MessageDirection, MessageOrigin, MessageStatus

if TYPE_CHECKING:
    from api.types.thread import Thread


graphql_enum(MessageDirection, description="Whether the message was received or sent by the sub-account's user.",
             values={
                 MessageDirection.INBOUND: "Received from a contact.",
                 MessageDirection.OUTBOUND: "Sent by the user (from the CRM or the mailbox).",
             })

graphql_enum(MessageStatus, description="Delivery state of a message.", values={
    MessageStatus.QUEUED: "A CRM send waiting in the outbox.",
    MessageStatus.SENT: "A CRM send accepted by the provider.",
    MessageStatus.FAILED: "A CRM send the provider refused for good.",
    MessageStatus.SYNCED: "Read from the mailbox.",
    MessageStatus.UNCERTAIN: "A CRM send handed to the SMTP relay whose answer was lost (a crash): it is not "
    "sent again, so it went out at most once; `statusDetail` says more.",
})

graphql_enum(MessageOrigin, description="Where a message was written.", values={
    MessageOrigin.CRM: "Written in the CRM and sent through the mailbox.",
    MessageOrigin.MAILBOX: "Written or received in the mailbox.",
})


@strawberry.type(description="An email address with its optional display name.")
class EmailAddress:
    email: str = strawberry.field(description="The address.")
    name: str | None = strawberry.field(description="The display name, if any.")


@strawberry.type(description="A file attached to a message: its metadata, and a short-lived link to its content.")
class Attachment:
    id: strawberry.ID = strawberry.field(description="Opaque identifier of the attachment.")
    filename: str = strawberry.field(description="File name as sent.")
    content_type: str = strawberry.field(description="MIME type, checked against the content.")
    size: int = strawberry.field(description="Size in bytes.")

    @strawberry.field(
        description="A signed URL that downloads the content with a plain GET, without an Authorization "
        "header, for a few minutes (`EMAILSYNC_ATTACHMENT_URL_TTL`, 300 s by default). Ask for it when "
        "the user opens the file; do not store it. Any holder of the URL can fetch that file until it expires."
    )
    def download_url(self, info: Info) -> str:
        viewer = info.context.require_member()
        attachment_id = parse_global_id(self.id, "Attachment")
        assert attachment_id is not None and viewer.sub_account_id is not None  # built by Message.attachments
        return signed_download_url(info.context.runtime.settings, attachment_id, viewer.sub_account_id)


def _addresses(raw: list[dict[str, Any]] | str | None) -> list[EmailAddress]:
    # Inbox rows carry recipients as JSON text, decoded only when a query asks for them.
    if isinstance(raw, str):
        raw = json.loads(raw)
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
    route: SenderRoute | None = strawberry.field(
        description="CRM sends: the service it left through (null for mail read from the mailbox)."
    )
    route_reason: RouteReason | None = strawberry.field(description="CRM sends: why that route.")
    kind: EmailKind | None = strawberry.field(description="CRM sends: individual, bulk or workflow email.")
    db_id: strawberry.Private[uuid.UUID]
    thread_db_id: strawberry.Private[uuid.UUID]
    # Decoded lists, or JSON text (see ``_addresses``).
    raw_to: strawberry.Private[list[dict[str, Any]] | str | None]
    raw_cc: strawberry.Private[list[dict[str, Any]] | str | None]
    raw_bcc: strawberry.Private[list[dict[str, Any]] | str | None]
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


# What a Message is built from, in this order (see ``message_columns``): the summary
# columns the repository selects, less the connection (not part of the API type).
_COLUMNS = tuple(name for name in MESSAGE_SUMMARY_COLUMNS if name != "connection_id")
# Stored value -> enum member. Rows of the models' typed columns already hold members;
# the lookup also takes a plain value, and is cheaper than ``Enum(value)`` (an unknown
# value still fails, with a KeyError).
_DIRECTIONS = {member.value: member for member in MessageDirection}
_ORIGINS = {member.value: member for member in MessageOrigin}
_STATUSES = {member.value: member for member in MessageStatus}
_ROUTES = {member.value: member for member in SenderRoute}
_REASONS = {member.value: member for member in RouteReason}
_KINDS = {member.value: member for member in EmailKind}


def message_from_row(row: Any, prefix: str = "") -> Message:
    """From a message row, bodies optional; ``prefix`` names its columns inside a wider
    row (``m_`` of an inbox row, which never carries bodies)."""
    values = [getattr(row, prefix + name) for name in _COLUMNS]
    has_bodies = prefix + "html" in row._fields
    bodies = (getattr(row, prefix + "html"), getattr(row, prefix + "text")) if has_bodies else None
    return message_from_values(values, bodies)


def message_columns(labels: Sequence[str], prefix: str) -> Callable[[Any], tuple[Any, ...]]:
    """A positional getter of a message's columns (bodies aside) from rows whose columns
    are ``labels`` (``prefix`` + name): for hot lists, where attribute lookups add up."""
    index = {label: i for i, label in enumerate(labels)}
    return itemgetter(*(index[prefix + name] for name in _COLUMNS))


def message_from_values(values: Sequence[Any], bodies: tuple[str | None, str | None] | None = None) -> Message:
    """``values`` in ``_COLUMNS`` order; ``bodies`` (html, text) when the row carried them."""
    (id_, thread_id, direction, origin, status, subject, from_email, from_name, to, cc, bcc, snippet, is_read,
     deleted_in_mailbox, sent_at, created_at, error, route, route_reason, kind) = values
    return Message(
        id=strawberry.ID(to_global_id("Message", id_)),
        direction=_DIRECTIONS[direction],
        origin=_ORIGINS[origin],
        status=_STATUSES[status],
        subject=subject,
        from_=EmailAddress(email=from_email, name=from_name) if from_email else None,
        snippet=snippet,
        is_read=is_read,
        deleted_in_mailbox=deleted_in_mailbox,
        sent_at=sent_at,
        created_at=created_at,
        status_detail=error,
        route=_ROUTES[route] if route else None,
        route_reason=_REASONS[route_reason] if route_reason else None,
        kind=_KINDS[kind] if kind else None,
        db_id=id_,
        thread_db_id=thread_id,
        raw_to=to,
        raw_cc=cc,
        raw_bcc=bcc,
        has_bodies=bodies is not None,
        raw_html=bodies[0] if bodies is not None else None,
        raw_text=bodies[1] if bodies is not None else None,
    )
