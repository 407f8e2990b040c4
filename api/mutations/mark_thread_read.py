"""markThreadRead: mark every message of a thread read or unread (synced to the mailbox)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.ids import parse_global_id
from api.types.thread import Thread, thread_from_row
from api.types.user_errors import ThreadError, user_error, user_errors
from sync_engine.services.errors import ServiceError


@strawberry.input(description="The thread and its new read state.")
class MarkThreadReadInput:
    thread_id: strawberry.ID = strawberry.field(description="Global id of the thread.")
    read: bool = strawberry.field(default=True, description="True: read; false: unread.")


@strawberry.type(description="Result of markThreadRead.")
class MarkThreadReadPayload:
    thread: Thread | None = strawberry.field(description="The thread with its new counts.")
    user_errors: list[ThreadError] = strawberry.field(description="Why it failed, if it did.")


async def mark_thread_read(
    info: Info, input: Annotated[MarkThreadReadInput, strawberry.argument(description="The thread.")]
) -> MarkThreadReadPayload:
    from sync_engine.services.send import mark_thread_read as mark_service

    viewer = info.context.require_member()
    thread_id = parse_global_id(input.thread_id, "Thread")
    if thread_id is None:
        return MarkThreadReadPayload(
            thread=None, user_errors=[user_error(ThreadError, "NOT_FOUND", "thread not found", "threadId")]
        )
    try:
        await mark_service(
            info.context.runtime, sub_account_id=viewer.sub_account_id, thread_id=thread_id, is_read=input.read
        )
    except ServiceError as exc:
        return MarkThreadReadPayload(thread=None, user_errors=user_errors(ThreadError, exc))
    info.context.shared_reads_changed()
    row = await info.context.loaders.thread.load(thread_id)
    return MarkThreadReadPayload(thread=thread_from_row(row) if row is not None else None, user_errors=[])
