"""Read-state changes made in the CRM, written back to the mailbox.

``markThreadRead`` marks the changed messages ``read_writeback_pending`` in its own
transaction and enqueues a write-back; the flag stays until the mailbox has the value,
so a sync pass does not undo the change meanwhile (``page_plan``) and the periodic
safety net finds write-backs whose job was lost (queue down, worker killed).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from db.models import EmailConnection
from db.repositories import mailbox_sync as repo
from sync_engine.domain import AuthRevokedError, NotFoundError
from sync_engine.runtime import Runtime
from sync_engine.services.tokens import client_for


async def write_back(rt: Runtime, connection_id: uuid.UUID, provider_ids: list[str], is_read: bool) -> None:
    """Set the read state in the mailbox; ``ThrottledError`` leaves the rest for a retry."""
    async with rt.sessions() as session:
        conn = await session.scalar(select(EmailConnection).where(EmailConnection.id == connection_id))
    if conn is None or not conn.is_current or conn.token_ciphertext is None:
        return
    client = client_for(rt, conn)
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
            async with rt.sessions.begin() as session:
                await repo.clear_read_writeback(session, conn.id, done, is_read)


async def pending_write_backs(rt: Runtime) -> dict[tuple[uuid.UUID, bool], list[str]]:
    """Pending changes of live mailboxes: provider ids by (connection, read state)."""
    async with rt.sessions() as session:
        pending = await repo.pending_read_writebacks(session)
    grouped: dict[tuple[uuid.UUID, bool], list[str]] = {}
    for connection_id, is_read, provider_id in pending:
        grouped.setdefault((connection_id, is_read), []).append(provider_id)
    return grouped
