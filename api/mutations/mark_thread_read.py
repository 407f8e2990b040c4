"""markThreadRead: mark every message of a thread read or unread (synced to the mailbox)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.dataloaders import load_as
from api.types.thread import Thread, thread_from_row
from api.types.user_errors import ThreadError, input_id, service_errors_as


@strawberry.input(description="The thread and its new read state.")
class MarkThreadReadInput:
    thread_id: strawberry.ID = strawberry.field(description="Global id of the thread.")
    read: bool = strawberry.field(default=True, description="True: read; false: unread.")


@strawberry.type(description="Result of markThreadRead.")
class MarkThreadReadPayload:
    thread: Thread | None = strawberry.field(default=None, description="The thread with its new counts.")
    user_errors: list[ThreadError] = strawberry.field(default_factory=list, description="Why it failed, if it did.")


@service_errors_as(MarkThreadReadPayload, ThreadError)
async def mark_thread_read(
    info: Info, input: Annotated[MarkThreadReadInput, strawberry.argument(description="The thread.")]
) -> MarkThreadReadPayload:

    viewer = info.context.require_member()
    thread_id = input_id(input.thread_id, "Thread", what="thread", field="threadId")
    await info.context.services.read_state.mark_thread_read(
        sub_account_id=viewer.sub_account_id, thread_id=thread_id, is_read=input.read
    )
    info.context.shared_reads_changed()
    return MarkThreadReadPayload(thread=await load_as(info.context.loaders.thread, thread_id, thread_from_row))
