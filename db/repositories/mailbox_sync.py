"""Queries the sync engine runs while importing a mailbox and draining the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    ConnectionStatus,
    Contact,
    EmailConnection,
    Message,
    SubAccount,
    Thread,
    User,
)


async def acquire_sync_lease(
    session: AsyncSession, connection_id: uuid.UUID, owner: str, now: datetime, until: datetime
) -> bool:
    """Take the mailbox's sync lease unless another live pass holds it (one sync per mailbox)."""
    result = await session.execute(
        update(EmailConnection)
        .where(
            EmailConnection.id == connection_id,
            EmailConnection.is_current.is_(True),
            EmailConnection.status.in_(ConnectionStatus.LIVE),
            or_(EmailConnection.sync_lease_until.is_(None), EmailConnection.sync_lease_until < now),
        )
        .values(sync_lease_owner=owner, sync_lease_until=until)
    )
    return result.rowcount == 1


async def renew_sync_lease(session: AsyncSession, connection_id: uuid.UUID, owner: str, until: datetime) -> bool:
    """Extend a live pass's lease (its heartbeat); False once another pass owns the mailbox
    or the lease was released."""
    result = await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id, EmailConnection.sync_lease_owner == owner)
        .values(sync_lease_until=until)
    )
    return result.rowcount == 1


async def holds_sync_lease(session: AsyncSession, connection_id: uuid.UUID, owner: str) -> bool:
    found = await session.scalar(
        select(EmailConnection.id).where(EmailConnection.id == connection_id, EmailConnection.sync_lease_owner == owner)
    )
    return found is not None


async def release_sync_lease(session: AsyncSession, connection_id: uuid.UUID, owner: str) -> bool:
    """Release only when no request arrived since the pass started; False means: run again
    (if the lease is still ours — see ``holds_sync_lease``)."""
    result = await session.execute(
        update(EmailConnection)
        .where(
            EmailConnection.id == connection_id,
            EmailConnection.sync_lease_owner == owner,
            EmailConnection.sync_requested_seq <= EmailConnection.sync_done_seq,
        )
        .values(sync_lease_owner=None, sync_lease_until=None)
    )
    return result.rowcount == 1


async def drop_sync_lease(session: AsyncSession, connection_id: uuid.UUID, owner: str) -> None:
    await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id, EmailConnection.sync_lease_owner == owner)
        .values(sync_lease_owner=None, sync_lease_until=None)
    )


async def defer_sync_lease(session: AsyncSession, connection_id: uuid.UUID, owner: str, until: datetime) -> None:
    """A throttled pass lets go of the mailbox but keeps it blocked until the provider's
    retry time: no owner, and a lease end that neither ``acquire_sync_lease`` nor
    ``pending_sync_connections`` passes before then."""
    await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id, EmailConnection.sync_lease_owner == owner)
        .values(sync_lease_owner=None, sync_lease_until=until)
    )


async def sync_requested(session: AsyncSession, connection_id: uuid.UUID) -> bool:
    """A sync request no pass has served yet (every enqueue of a sync bumps the counter first)."""
    found = await session.scalar(
        select(EmailConnection.id).where(
            EmailConnection.id == connection_id,
            EmailConnection.sync_requested_seq > EmailConnection.sync_done_seq,
        )
    )
    return found is not None


async def pending_sync_connections(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    """Live mailboxes with a sync request no pass is serving (e.g. its worker died), and
    not blocked by a throttled pass until its retry time (``defer_sync_lease``)."""
    rows = await session.scalars(
        select(EmailConnection.id).where(
            EmailConnection.is_current.is_(True),
            EmailConnection.status.in_(ConnectionStatus.LIVE),
            EmailConnection.sync_requested_seq > EmailConnection.sync_done_seq,
            or_(EmailConnection.sync_lease_until.is_(None), EmailConnection.sync_lease_until < now),
        )
    )
    return list(rows)


async def bump_sync_request(session: AsyncSession, connection_id: uuid.UUID) -> None:
    await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id)
        .values(sync_requested_seq=EmailConnection.sync_requested_seq + 1)
    )


async def connection_by_watch_id(session: AsyncSession, watch_id: str) -> EmailConnection | None:
    return await session.scalar(select(EmailConnection).where(EmailConnection.watch_id == watch_id))


async def current_connection(session: AsyncSession, sub_account_id: uuid.UUID, user_id: uuid.UUID) -> EmailConnection | None:
    """The user's connected mailbox (the one new CRM mail goes out through)."""
    return await session.scalar(
        select(EmailConnection).where(
            EmailConnection.sub_account_id == sub_account_id,
            EmailConnection.user_id == user_id,
            EmailConnection.is_current.is_(True),
        )
    )


async def user_in_sub_account(session: AsyncSession, sub_account_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await session.scalar(select(User.id).where(User.id == user_id, User.sub_account_id == sub_account_id))
    return found is not None


async def current_connection_by_address(session: AsyncSession, provider: str, address: str) -> EmailConnection | None:
    return await session.scalar(
        select(EmailConnection).where(
            EmailConnection.provider == provider,
            func.lower(EmailConnection.address) == address.strip().lower(),
            EmailConnection.is_current.is_(True),
        )
    )


async def mark_read_writeback_pending(session: AsyncSession, sub_account_id: uuid.UUID, message_ids: list[uuid.UUID]) -> None:
    if message_ids:
        await session.execute(
            update(Message)
            .where(Message.sub_account_id == sub_account_id, Message.id.in_(message_ids))
            .values(read_writeback_pending=True)
            .execution_options(synchronize_session=False)
        )


async def clear_read_writeback(
    session: AsyncSession, connection_id: uuid.UUID, provider_ids: list[str], is_read: bool
) -> None:
    """Written back: only where the CRM still holds that value (a later opposite change
    stays pending for its own write-back)."""
    if provider_ids:
        await session.execute(
            update(Message)
            .where(Message.connection_id == connection_id, Message.provider_message_id.in_(provider_ids),
                   Message.is_read.is_(is_read))
            .values(read_writeback_pending=False)
            .execution_options(synchronize_session=False)
        )


async def pending_read_writebacks(session: AsyncSession, limit: int = 5000) -> list[tuple[uuid.UUID, bool, str]]:
    """(connection, read state, provider id) of CRM read-state changes not yet in live mailboxes."""
    rows = await session.execute(
        select(Message.connection_id, Message.is_read, Message.provider_message_id)
        .join(EmailConnection, EmailConnection.id == Message.connection_id)
        .where(Message.read_writeback_pending.is_(True), Message.provider_message_id.is_not(None),
               EmailConnection.is_current.is_(True), EmailConnection.status.in_(ConnectionStatus.LIVE))
        .limit(limit)
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def user_addresses(session: AsyncSession, sub_account_id: uuid.UUID) -> set[str]:
    """Every address that belongs to a user of the sub-account: CRM logins and connected mailboxes."""
    users = await session.scalars(select(User.email_normalized).where(User.sub_account_id == sub_account_id))
    mailboxes = await session.scalars(
        select(EmailConnection.address).where(EmailConnection.sub_account_id == sub_account_id)
    )
    # Lowercased here, not in SQL: SQLite's lower() folds ASCII only ("Ü" stays), and a
    # colleague's address that is not recognised would break the confidentiality rule.
    return set(users) | {address.strip().lower() for address in mailboxes}


async def contacts_by_emails(
    session: AsyncSession, sub_account_id: uuid.UUID, emails: Iterable[str]
) -> dict[str, Contact]:
    wanted = {e.strip().lower() for e in emails if e}
    if not wanted:
        return {}
    rows = await session.scalars(
        select(Contact).where(Contact.sub_account_id == sub_account_id, Contact.email_normalized.in_(wanted))
    )
    return {c.email_normalized: c for c in rows}


async def sub_account(session: AsyncSession, sub_account_id: uuid.UUID) -> SubAccount | None:
    return await session.get(SubAccount, sub_account_id)


async def latest_message_with_provider_id(
    session: AsyncSession, sub_account_id: uuid.UUID, thread_id: uuid.UUID, connection_id: uuid.UUID
) -> Message | None:
    """The newest message of a thread that exists in the given mailbox (the one to reply to)."""
    return await session.scalar(
        select(Message)
        .where(
            Message.sub_account_id == sub_account_id,
            Message.thread_id == thread_id,
            Message.connection_id == connection_id,
            Message.provider_message_id.is_not(None),
            Message.deleted_in_mailbox.is_(False),
        )
        .order_by(Message.sent_at.desc().nulls_last(), Message.created_at.desc())
        .limit(1)
    )


async def add_to_thread_counters(
    session: AsyncSession, thread_id: uuid.UUID, *, sent_at: datetime | None, unread: bool, snippet: str
) -> None:
    values: dict[str, object] = {
        "message_count": Thread.message_count + 1,
        "unread_count": Thread.unread_count + (1 if unread else 0),
    }
    await session.execute(update(Thread).where(Thread.id == thread_id).values(**values))
    if sent_at is not None:
        await session.execute(
            update(Thread)
            .where(
                Thread.id == thread_id,
                or_(Thread.last_message_at.is_(None), Thread.last_message_at <= sent_at),
            )
            .values(last_message_at=sent_at, snippet=snippet)
        )


async def recount_unread(session: AsyncSession, thread_id: uuid.UUID) -> None:
    unread = (
        select(func.count(Message.id))
        .where(and_(Message.thread_id == thread_id, Message.is_read.is_(False), Message.direction == "inbound"))
        .scalar_subquery()
    )
    await session.execute(update(Thread).where(Thread.id == thread_id).values(unread_count=unread))
