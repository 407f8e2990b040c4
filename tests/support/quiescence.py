"""Waiting for the engine to have finished, instead of sleeping until it probably has.

A scenario that asserts "nothing more happened" (no duplicate, no late import) first
waits for a fact that the work is over, read from the rows that record it:

- a mailbox's sync is over when no pass holds its lease and every sync request has been
  served (``sync_done_seq`` caught up with ``sync_requested_seq``, which every enqueued
  sync bumps first); a mailbox that can no longer sync (disconnected, replaced, waiting
  for a new sign-in) is over once no pass holds it, since none can start;
- ``sync_caught_up`` asks for a sync as the app does (``requestSync``) and waits for the
  pass that serves it: everything the mailbox held before the call is then imported, and
  a later pass (a late notification's) reads from the cursor that pass stored;
- a CRM send is over when its outbox row left ``pending``: a retry never sends again.

Each probe polls with a deadline (``Stack.wait_for``) and fails with what it waited for.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from db.models import ConnectionStatus, EmailConnection, OutboxItem, OutboxStatus
from tests.support.stack import Stack, Tenant

REQUEST_SYNC = "mutation { requestSync { userErrors { code message } } }"


async def current_connection(stack: Stack, tenant: Tenant) -> EmailConnection:
    async with stack.runtime.sessions() as session:
        conn = await session.scalar(select(EmailConnection).where(EmailConnection.user_id == tenant.user_id,
                                                                  EmailConnection.is_current.is_(True)))
    assert conn is not None, "the tenant's user has no connected mailbox"
    return conn


def sync_is_over(conn: EmailConnection, now: datetime | None = None) -> bool:
    """No pass holds the mailbox, and none is owed to it (see the module docstring)."""
    now = now or datetime.now(UTC)
    if conn.sync_lease_owner is not None and (conn.sync_lease_until is None or conn.sync_lease_until > now):
        return False  # a pass is running (a dead worker's lease lapses: then it is not)
    can_sync = conn.is_current and conn.token_ciphertext is not None and conn.status in ConnectionStatus.LIVE
    return not can_sync or conn.sync_done_seq >= conn.sync_requested_seq


async def sync_settled(stack: Stack, connection_id: uuid.UUID, *, watching: bool = False,
                       timeout: float = 30.0) -> EmailConnection:
    """The connection once its sync is over (and, with ``watching``, once it has synced
    and its provider watch exists: a settled connection that will hear of new mail)."""

    async def probe() -> EmailConnection | None:
        async with stack.runtime.sessions() as session:
            conn = await session.get(EmailConnection, connection_id)
        assert conn is not None, f"connection {connection_id} is gone"
        if watching and (conn.last_sync_at is None or conn.watch_expires_at is None):
            return None
        return conn if sync_is_over(conn) else None

    return await stack.wait_for(probe, timeout=timeout, what=f"the sync of connection {connection_id} to be over")


async def sync_caught_up(stack: Stack, tenant: Tenant, *, timeout: float = 30.0) -> EmailConnection:
    """Request a sync of the tenant's mailbox and wait until it has been served and no other
    pass runs: the CRM then holds everything the mailbox held before this call."""
    data = await stack.graphql(REQUEST_SYNC, token=tenant.token)
    assert data["requestSync"]["userErrors"] == [], data
    conn = await current_connection(stack, tenant)
    requested = conn.sync_requested_seq  # includes ours: the mutation bumped it before answering

    async def served() -> EmailConnection | None:
        async with stack.runtime.sessions() as session:
            row = await session.get(EmailConnection, conn.id)
        assert row is not None
        return row if row.sync_done_seq >= requested and sync_is_over(row) else None

    return await stack.wait_for(served, timeout=timeout, what="the requested sync pass to finish")


async def outbox_settled(stack: Stack, tenant: Tenant, *, timeout: float = 30.0) -> list[OutboxItem]:
    """The sub-account's outbox rows once none is pending any more."""

    async def probe() -> list[OutboxItem] | None:
        async with stack.runtime.sessions() as session:
            rows = list(await session.scalars(select(OutboxItem).where(
                OutboxItem.sub_account_id == tenant.sub_account_id)))
        return rows if rows and all(r.status != OutboxStatus.PENDING for r in rows) else None

    return await stack.wait_for(probe, timeout=timeout, what="every send of the sub-account to be over")
