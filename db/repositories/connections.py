"""The email-connection aggregate: sync leases and requests, push registrations, tokens,
statuses, sign-in flows, and the API's display reads.

Display reads select only public columns: token ciphertext, sync cursors, watch ids and
the clientState hash never leave the database through them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Row, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.models import ConnectionStatus, EmailConnection, OAuthFlow, SyncSkip
from db.repositories.skips import CONFIDENTIAL_REASON

connections_t = EmailConnection.__table__
skips_t = SyncSkip.__table__

PUBLIC_COLUMNS = (
    "id",
    "sub_account_id",
    "user_id",
    "provider",
    "address",
    "display_name",
    "status",
    "status_detail",
    "is_current",
    "last_sync_at",
    "messages_synced",
    "confidential_skipped",
    "connected_at",
    "disconnected_at",
    "created_at",
)
_COLUMNS = [connections_t.c[name] for name in PUBLIC_COLUMNS]


async def current_connection_of_user(
    conn: AsyncConnection, sub_account_id: uuid.UUID, user_id: uuid.UUID
) -> Row[Any] | None:
    stmt = select(*_COLUMNS).where(
        connections_t.c.sub_account_id == sub_account_id,
        connections_t.c.user_id == user_id,
        connections_t.c.is_current.is_(True),
    )
    return (await conn.execute(stmt)).first()


async def current_connections(conn: AsyncConnection, sub_account_id: uuid.UUID) -> list[Row[Any]]:
    stmt = (
        select(*_COLUMNS)
        .where(connections_t.c.sub_account_id == sub_account_id, connections_t.c.is_current.is_(True))
        .order_by(connections_t.c.address, connections_t.c.id)
    )
    return list((await conn.execute(stmt)).all())


async def connections_by_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    if not ids:
        return []
    stmt = select(*_COLUMNS).where(connections_t.c.sub_account_id == sub_account_id, connections_t.c.id.in_(list(ids)))
    return list((await conn.execute(stmt)).all())


async def skip_counts_by_connection_ids(
    conn: AsyncConnection, sub_account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not ids:
        return {}
    stmt = (
        select(skips_t.c.connection_id, func.count())
        .where(
            skips_t.c.sub_account_id == sub_account_id,
            skips_t.c.connection_id.in_(list(ids)),
            # Confidential mail has its own counter on the connection.
            skips_t.c.reason != CONFIDENTIAL_REASON,
        )
        .group_by(skips_t.c.connection_id)
    )
    return {row[0]: row[1] for row in (await conn.execute(stmt)).all()}


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
    # AsyncSession.execute types every result as a Result; an UPDATE's is a CursorResult,
    # which has the row count (the same cast below).
    return cast(CursorResult[Any], result).rowcount == 1


async def renew_sync_lease(session: AsyncSession, connection_id: uuid.UUID, owner: str, until: datetime) -> bool:
    """Extend a live pass's lease (its heartbeat); False once another pass owns the mailbox
    or the lease was released."""
    result = await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id, EmailConnection.sync_lease_owner == owner)
        .values(sync_lease_until=until)
    )
    return cast(CursorResult[Any], result).rowcount == 1


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
    return cast(CursorResult[Any], result).rowcount == 1


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


async def current_connection_by_address(session: AsyncSession, provider: str, address: str) -> EmailConnection | None:
    return await session.scalar(
        select(EmailConnection).where(
            EmailConnection.provider == provider,
            func.lower(EmailConnection.address) == address.strip().lower(),
            EmailConnection.is_current.is_(True),
        )
    )


async def change_status(
    session: AsyncSession, connection_id: uuid.UUID, status: str, detail: str | None, *, error: str | None = None
) -> EmailConnection | None:
    """Set a current connection's status; the changed row, or None when nothing changed.

    A mailbox that must be connected again stays so until the user signs in again (which
    does not come through here): a late job failing or finishing must not make it look
    usable, or mail would be handed to a mailbox that cannot send. One conditional UPDATE
    (no read-then-write): a pass finishing after a disconnect or "update email" must not
    revive the old mailbox, even if the disconnect commits meanwhile."""
    values: dict[str, object] = {"status": status, "status_detail": detail}
    if error is not None:
        values["last_error"] = error
    unchangeable = [ConnectionStatus.DISCONNECTED]
    if status != ConnectionStatus.REAUTH_REQUIRED:
        unchangeable.append(ConnectionStatus.REAUTH_REQUIRED)
    return await session.scalar(
        update(EmailConnection)
        .where(
            EmailConnection.id == connection_id,
            EmailConnection.is_current.is_(True),
            EmailConnection.status.not_in(unchangeable),
            or_(EmailConnection.status != status, EmailConnection.status_detail.is_distinct_from(detail)),
        )
        .values(**values)
        .returning(EmailConnection)
    )


async def store_refreshed_tokens(session: AsyncSession, connection_id: uuid.UUID, ciphertext: str) -> None:
    """Keep refreshed tokens, unless the connection was retired (its tokens erased) meanwhile."""
    await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id, EmailConnection.token_ciphertext.is_not(None))
        .values(token_ciphertext=ciphertext)
    )


async def by_id(session: AsyncSession, connection_id: uuid.UUID) -> EmailConnection | None:
    """A connection by id, for the engine's jobs (ids come from our own queue, never a client)."""
    return await session.get(EmailConnection, connection_id)


# --- sign-in flows (oauth_flows) -------------------------------------------------------

async def start_flow(session: AsyncSession, flow: OAuthFlow, now: datetime) -> None:
    """Keep a new sign-in flow, dropping expired ones on the way."""
    await session.execute(delete(OAuthFlow).where(OAuthFlow.expires_at < now))
    session.add(flow)


def _pending_flow(state: str, provider: str) -> tuple[ColumnElement[bool], ...]:
    return (OAuthFlow.state == state, OAuthFlow.provider == provider, OAuthFlow.flow_token_hash.is_(None))


async def take_pending_flow(session: AsyncSession, state: str, provider: str) -> OAuthFlow | None:
    """Delete and return a flow still waiting for the provider's answer."""
    return await session.scalar(delete(OAuthFlow).where(*_pending_flow(state, provider)).returning(OAuthFlow))


async def park_provider_answer(session: AsyncSession, state: str, provider: str, now: datetime, *,
                               token_hash: str, answer_ciphertext: str, expires_at: datetime) -> OAuthFlow | None:
    """One conditional UPDATE: a replayed or concurrent answer for the same state finds nothing."""
    return await session.scalar(
        update(OAuthFlow)
        .where(*_pending_flow(state, provider), OAuthFlow.expires_at >= now)
        .values(flow_token_hash=token_hash, answer_ciphertext=answer_ciphertext, expires_at=expires_at)
        .returning(OAuthFlow)
    )


async def take_answered_flow(session: AsyncSession, token_hash: str) -> OAuthFlow | None:
    """Single use, whoever presents it: a victim's app presenting an attacker's flow kills it."""
    return await session.scalar(delete(OAuthFlow).where(OAuthFlow.flow_token_hash == token_hash).returning(OAuthFlow))


# --- connecting, retiring ----------------------------------------------------------------

async def lock_current_connection(session: AsyncSession, sub_account_id: uuid.UUID,
                                  user_id: uuid.UUID) -> EmailConnection | None:
    """The user's current connection, locked until the transaction ends (one sign-in at a time)."""
    return await session.scalar(
        select(EmailConnection)
        .where(EmailConnection.sub_account_id == sub_account_id, EmailConnection.user_id == user_id,
               EmailConnection.is_current.is_(True))
        .with_for_update()
    )


async def unretired_connection_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Replaced or disconnected connections that still hold tokens (their retire job was lost)."""
    rows = await session.scalars(
        select(EmailConnection.id).where(EmailConnection.is_current.is_(False),
                                         EmailConnection.token_ciphertext.is_not(None))
    )
    return list(rows)


async def erase_secrets(session: AsyncSession, connection_id: uuid.UUID) -> None:
    """A retired connection keeps nothing that could reach the mailbox again."""
    await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id)
        .values(token_ciphertext=None, watch_id=None, watch_expires_at=None, client_state_hash=None, cursor=None)
    )


# --- push registrations ----------------------------------------------------------------

async def store_watch(session: AsyncSession, connection_id: uuid.UUID, *, watch_id: str, expires_at: datetime,
                      client_state_hash: str) -> bool:
    """False when the connection stopped being current meanwhile (disconnected while registering)."""
    stored = await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id, EmailConnection.is_current.is_(True))
        .values(watch_id=watch_id, watch_expires_at=expires_at, client_state_hash=client_state_hash)
    )
    return cast(CursorResult[Any], stored).rowcount == 1


async def extend_watch(session: AsyncSession, connection_id: uuid.UUID, expires_at: datetime) -> None:
    await session.execute(
        update(EmailConnection).where(EmailConnection.id == connection_id).values(watch_expires_at=expires_at)
    )


async def expiring_watch_ids(session: AsyncSession, now: datetime, *, renew_ahead: timedelta,
                             setup_grace: timedelta) -> list[uuid.UUID]:
    """Live connections whose watch expires within ``renew_ahead``, or that have none
    (never registered, or lost) and are older than ``setup_grace`` (a fresh connection's
    own setup job is still at work)."""
    rows = await session.scalars(
        select(EmailConnection.id).where(
            EmailConnection.is_current.is_(True),
            EmailConnection.status.in_(ConnectionStatus.LIVE),
            or_(
                and_(EmailConnection.watch_expires_at.is_(None), EmailConnection.connected_at < now - setup_grace),
                EmailConnection.watch_expires_at < now + renew_ahead,
            ),
        )
    )
    return list(rows)


# --- sync passes ---------------------------------------------------------------------------

async def finish_pass(session: AsyncSession, connection_id: uuid.UUID, owner: str, *, served_seq: int,
                      now: datetime) -> None:
    """Record the requests a pass served, while it still holds the lease."""
    await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id, EmailConnection.sync_lease_owner == owner)
        .values(sync_done_seq=served_seq, last_sync_at=now)
    )


async def reset_cursor(session: AsyncSession, connection_id: uuid.UUID, owner: str) -> bool:
    """Forget an expired cursor (full resync next); False when the pass lost its lease."""
    reset = await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id, EmailConnection.sync_lease_owner == owner)
        .values(cursor=None)
    )
    return cast(CursorResult[Any], reset).rowcount == 1


async def store_page_cursor(session: AsyncSession, connection_id: uuid.UUID, lease_owner: str, *,
                            cursor: dict[str, Any] | None,
                            imported: int, confidential: int, lease_until: datetime) -> bool:
    """Move the cursor past an imported page and count it; only the lease holder of a
    current mailbox may (False otherwise: the caller rolls the page back)."""
    stored = await session.execute(
        update(EmailConnection)
        .where(EmailConnection.id == connection_id, EmailConnection.sync_lease_owner == lease_owner,
               EmailConnection.is_current.is_(True))
        .values(cursor=cursor, messages_synced=EmailConnection.messages_synced + imported,
                confidential_skipped=EmailConnection.confidential_skipped + confidential,
                sync_lease_until=lease_until)
    )
    return cast(CursorResult[Any], stored).rowcount == 1
