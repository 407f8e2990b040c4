"""Read state: a thread marked read or unread in the CRM, written back to the mailbox.

``mark_thread_read`` marks the changed messages ``read_writeback_pending`` in its own
transaction and enqueues a write-back; the flag stays until the mailbox has the value,
so a sync pass does not undo the change meanwhile (``page_plan``) and the periodic
safety net finds write-backs whose job was lost (queue down, worker killed). Read
changes made in the mailbox arrive with the sync (``page_plan``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from db.models import Thread
from db.repositories import connections as connections_repo
from db.repositories import messages as repo
from sync_engine.domain import AuthRevokedError, NotFoundError
from sync_engine.events import DomainEvent, record_events
from sync_engine.job_queue import Jobs
from sync_engine.services.collaborators import EventPublisher, SessionFactory
from sync_engine.services.errors import NotFound
from sync_engine.services.mailboxes import Mailboxes
from vocabulary import EventType


@dataclass(frozen=True)
class ReadStateService:
    sessions: SessionFactory
    mailboxes: Mailboxes
    events: EventPublisher
    jobs: Jobs

    async def mark_thread_read(self, *, sub_account_id: uuid.UUID, thread_id: uuid.UUID, is_read: bool) -> Thread:
        async with self.sessions.begin() as session:
            thread = await repo.thread_in_sub_account(session, sub_account_id, thread_id)
            if thread is None:
                raise NotFound("thread", "threadId")
            changed = await repo.set_thread_read_state(session, sub_account_id, thread_id, is_read)
            # Write the flag back to the mailbox(es) the messages live in; until that is done
            # they are marked pending, so neither a sync pass nor a lost job undoes the change.
            writeback = [m for m in changed if m.connection_id and m.provider_message_id and not m.deleted_in_mailbox]
            await repo.mark_read_writeback_pending(session, sub_account_id, [m.id for m in writeback])
            await repo.recount_unread(session, thread_id)
            await session.refresh(thread)
            events = [DomainEvent(type=EventType.MESSAGE_UPDATED, sub_account_id=str(sub_account_id),
                                  thread_id=str(thread_id), message_id=str(m.id)) for m in changed]
            await record_events(session, events)
        by_connection: dict[uuid.UUID, list[str]] = {}
        for m in writeback:
            if m.connection_id is not None and m.provider_message_id is not None:
                by_connection.setdefault(m.connection_id, []).append(m.provider_message_id)
        for connection_id, ids in by_connection.items():
            await self.jobs.write_back_read_state(connection_id, ids, is_read, after_commit=True)
        await self.events.publish_all(events)
        return thread

    async def write_back(self, connection_id: uuid.UUID, provider_ids: list[str], is_read: bool) -> None:
        """Set the read state in the mailbox; ``ThrottledError`` leaves the rest for a retry."""
        async with self.sessions() as session:
            conn = await connections_repo.by_id(session, connection_id)
        if conn is None or not conn.is_current or conn.token_ciphertext is None:
            return
        client = self.mailboxes.client_for(conn)
        done: list[str] = []
        try:
            for provider_id in provider_ids:
                try:
                    await client.set_read(provider_id, is_read)
                except NotFoundError:
                    pass  # gone from the mailbox: nothing to write back
                done.append(provider_id)
        except AuthRevokedError:
            return  # stays pending; written back once the mailbox is connected again
        finally:
            await client.aclose()
            if done:
                async with self.sessions.begin() as session:
                    await repo.clear_read_writeback(session, conn.id, done, is_read)

    async def pending_write_backs(self) -> dict[tuple[uuid.UUID, bool], list[str]]:
        """Pending changes of live mailboxes: provider ids by (connection, read state)."""
        async with self.sessions() as session:
            pending = await repo.pending_read_writebacks(session)
        grouped: dict[tuple[uuid.UUID, bool], list[str]] = {}
        for connection_id, is_read, provider_id in pending:
            grouped.setdefault((connection_id, is_read), []).append(provider_id)
        return grouped
