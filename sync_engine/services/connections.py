"""Connect, update ("connect a different mailbox"), disconnect and sync requests.

Sign-in, in three steps, so that only the CRM session that started a sign-in can
finish it (a victim lured to an attacker's authorization URL connects nothing):

1. ``start_connection`` asks the adapter for an authorization URL and keeps the flow
   secrets (PKCE verifier, nonce) encrypted in ``oauth_flows``, keyed by ``state``.
2. The provider sends the browser to ``/oauth/{provider}/callback``:
   ``accept_provider_answer`` finds the flow by ``state`` (once), parks the answer
   (the authorization code) encrypted and issues a one-time flow token, returned to
   the browser and kept only as its SHA-256. Nothing is exchanged yet: an answer that
   is never confirmed never turns into tokens, so there is nothing to revoke, and the
   anonymous callback never calls the provider. (Codes live ~10 minutes at Microsoft
   and Google; the flow token lives ``FLOW_TOKEN_LIFETIME``, less.)
3. The app calls ``completeEmailConnection`` with the token and its own credentials:
   ``complete_connection`` takes the flow (deleting it: once, whoever presents it),
   checks it belongs to the caller (same user, same sub-account, not expired; anything
   else is "not found"), exchanges the code and makes the mailbox the user's current
   connection.

Completing while another mailbox is connected replaces it: the old connection stops
syncing (its watch is stopped and tokens erased by a job) and its threads stay readable.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_, select, update

from db.base import utcnow
from db.models import ConnectionStatus, EmailConnection, OAuthFlow, User
from db.repositories import mailbox_sync as repo
from db.repositories.mailbox_history import adopt_previous_mailbox
from sync_engine.crypto import sha256_hex
from sync_engine.domain import ConnectedAccount, Provider, TokenSet, WatchState
from sync_engine.events import DomainEvent, EventType, record_events
from sync_engine.queue import enqueue_after_commit
from sync_engine.runtime import Runtime
from sync_engine.services.errors import NotFound, ServiceError

log = logging.getLogger(__name__)

# From startEmailConnection to the provider's answer (the user signing in).
FLOW_LIFETIME = timedelta(minutes=15)
# From the provider's answer to the app's confirmation: a redirect and one mutation away.
FLOW_TOKEN_LIFETIME = timedelta(minutes=5)
FLOW_TOKEN_MAX_LENGTH = 128


@dataclass(slots=True)
class ProviderAnswer:
    """What the callback tells the browser: where to go back to, with either a flow token
    to confirm (the provider signed the user in) or an error code."""

    return_to: str | None
    flow_token: str | None
    error: str | None


def callback_url(rt: Runtime, provider: Provider) -> str:
    return f"{rt.settings.public_base_url.rstrip('/')}/oauth/{provider.value}/callback"


def webhook_url(rt: Runtime, provider: Provider) -> str:
    path = "graph" if provider is Provider.OUTLOOK else "gmail"
    return f"{rt.settings.public_base_url.rstrip('/')}/webhooks/{path}"


async def start_connection(
    rt: Runtime,
    *,
    sub_account_id: uuid.UUID,
    user_id: uuid.UUID,
    provider: Provider,
    return_to: str | None,
    login_hint: str | None = None,
) -> str:
    if provider not in rt.providers:
        raise ServiceError("PROVIDER_UNAVAILABLE", f"{provider.value} is not configured", "provider")
    async with rt.sessions() as session:
        user = await session.scalar(select(User).where(User.id == user_id, User.sub_account_id == sub_account_id))
        if user is None:
            raise NotFound("user")
    request = await rt.provider(provider).begin_authorization(callback_url(rt, provider), login_hint)
    async with rt.sessions.begin() as session:
        await session.execute(delete(OAuthFlow).where(OAuthFlow.expires_at < utcnow()))
        session.add(
            OAuthFlow(
                state=request.state,
                sub_account_id=sub_account_id,
                user_id=user_id,
                provider=provider.value,
                flow_ciphertext=rt.secrets.encrypt_json(request.flow),
                return_to=return_to,
                expires_at=utcnow() + FLOW_LIFETIME,
            )
        )
    return request.url


async def accept_provider_answer(rt: Runtime, *, provider: Provider, params: Mapping[str, str]) -> ProviderAnswer:
    """The provider's answer at the callback: park it and issue the flow token (step 2)."""
    state = params.get("state", "")
    now = utcnow()
    pending = (OAuthFlow.state == state, OAuthFlow.provider == provider.value, OAuthFlow.flow_token_hash.is_(None))
    if "error" in params:
        async with rt.sessions.begin() as session:
            flow_row = await session.scalar(delete(OAuthFlow).where(*pending).returning(OAuthFlow))
        if flow_row is None or flow_row.expires_at < now:
            return ProviderAnswer(None, None, "unknown_or_expired_state")
        return ProviderAnswer(flow_row.return_to, None, params.get("error") or "access_denied")
    if not params.get("code"):
        return ProviderAnswer(None, None, "no_authorization_code")
    token = secrets.token_urlsafe(32)
    async with rt.sessions.begin() as session:
        # One conditional UPDATE: a replayed or concurrent answer for the same state finds nothing.
        flow_row = await session.scalar(
            update(OAuthFlow)
            .where(*pending, OAuthFlow.expires_at >= now)
            .values(flow_token_hash=sha256_hex(token), answer_ciphertext=rt.secrets.encrypt_json(dict(params)),
                    expires_at=now + FLOW_TOKEN_LIFETIME)
            .returning(OAuthFlow)
        )
    if flow_row is None:
        return ProviderAnswer(None, None, "unknown_or_expired_state")
    return ProviderAnswer(flow_row.return_to, token, None)


async def complete_connection(
    rt: Runtime, *, sub_account_id: uuid.UUID, user_id: uuid.UUID, flow_token: str
) -> uuid.UUID:
    """Confirm a sign-in (step 3): the caller must be the user, of the sub-account, that
    started it. Returns the id of the now current connection."""
    if not flow_token or len(flow_token) > FLOW_TOKEN_MAX_LENGTH:
        raise NotFound("sign-in", "flowToken")
    async with rt.sessions.begin() as session:
        # Single use, whoever presents it: a victim's app presenting an attacker's flow kills it.
        flow_row = await session.scalar(
            delete(OAuthFlow).where(OAuthFlow.flow_token_hash == sha256_hex(flow_token)).returning(OAuthFlow)
        )
    if flow_row is None or flow_row.answer_ciphertext is None or flow_row.expires_at < utcnow():
        raise NotFound("sign-in", "flowToken")
    if flow_row.user_id != user_id or flow_row.sub_account_id != sub_account_id:
        log.warning("a sign-in was presented by another user than the one who started it; it was discarded")
        raise NotFound("sign-in", "flowToken")
    provider = Provider(flow_row.provider)
    if provider not in rt.providers:
        raise ServiceError("PROVIDER_UNAVAILABLE", f"{provider.value} is not configured")
    try:
        account = await rt.provider(provider).complete_authorization(
            rt.secrets.decrypt_json(flow_row.flow_ciphertext), rt.secrets.decrypt_json(flow_row.answer_ciphertext),
            callback_url(rt, provider),
        )
    except Exception as exc:  # the provider's refusal, shown to the user as a code only
        log.warning("sign-in with %s failed: %s", provider.value, type(exc).__name__)
        raise ServiceError("PROVIDER_ERROR", "the provider refused the sign-in (code exchange failed): "
                                             "start again") from None
    return await _connect(rt, flow_row, provider, account)


async def _connect(rt: Runtime, flow_row: OAuthFlow, provider: Provider, account: ConnectedAccount) -> uuid.UUID:
    """Make the signed-in mailbox the user's current connection."""
    async with rt.sessions.begin() as session:
        current = await session.scalar(
            select(EmailConnection)
            .where(EmailConnection.user_id == flow_row.user_id, EmailConnection.is_current.is_(True))
            .with_for_update()
        )
        replaced: EmailConnection | None = None
        if current is not None and current.provider == provider.value and current.address.lower() == account.address.lower():
            conn = current  # re-authorisation of the same mailbox keeps its cursor and history
        else:
            if current is not None:
                replaced = current
                current.is_current = False
                current.status = ConnectionStatus.DISCONNECTED
                current.status_detail = "replaced by another mailbox"
                current.disconnected_at = utcnow()
                await session.flush()
            conn = EmailConnection(
                sub_account_id=flow_row.sub_account_id,
                user_id=flow_row.user_id,
                provider=provider.value,
                address=account.address,
                is_current=True,
            )
            session.add(conn)
            await session.flush()
            await adopt_previous_mailbox(session, new_connection_id=conn.id, user_id=flow_row.user_id,
                                         provider=provider.value, address=account.address)
        conn.display_name = account.display_name
        conn.token_ciphertext = rt.secrets.encrypt_tokens(account.tokens)
        conn.status = ConnectionStatus.ACTIVE
        conn.status_detail = None
        conn.last_error = None
        conn.connected_at = utcnow()
        await session.flush()
        conn_id = conn.id
        events = [connection_event(c) for c in (replaced, conn) if c is not None]
        await record_events(session, events)

    # The sign-in is committed: the user must not be told it failed because the queue is down.
    await rt.events.publish_all(events)
    if replaced is not None:
        await enqueue_after_commit(rt.queue, "retire_connection", str(replaced.id),
                                   safety_net="the hourly renew_expiring_watches job")
    if not await enqueue_after_commit(rt.queue, "setup_connection", str(conn_id), job_id=f"setup:{conn_id}",
                                      safety_net="resume_pending_syncs (first import) and the hourly watch job"):
        # Record the first import as requested: the periodic resume_pending_syncs job runs it
        # within a minute of the queue's return, instead of waiting for the hourly watch job.
        async with rt.sessions.begin() as session:
            await repo.bump_sync_request(session, conn_id)
    return conn_id


async def disconnect_connection(rt: Runtime, *, sub_account_id: uuid.UUID, user_id: uuid.UUID) -> EmailConnection:
    async with rt.sessions.begin() as session:
        conn = await repo.current_connection(session, sub_account_id, user_id)
        if conn is None:
            raise ServiceError("NOT_CONNECTED", "no mailbox is connected")
        conn.is_current = False
        conn.status = ConnectionStatus.DISCONNECTED
        conn.status_detail = "disconnected by the user"
        conn.disconnected_at = utcnow()
        await session.flush()
        events = [connection_event(conn)]
        await record_events(session, events)
    await rt.events.publish_all(events)
    # Stop the provider's push and erase tokens now, so nothing syncs any more either way.
    await retire_connection(rt, conn.id)
    return conn


async def unretired_connections(rt: Runtime) -> list[uuid.UUID]:
    """Replaced or disconnected connections that still hold tokens (their retire job was lost)."""
    async with rt.sessions() as session:
        rows = await session.scalars(
            select(EmailConnection.id).where(EmailConnection.is_current.is_(False),
                                             EmailConnection.token_ciphertext.is_not(None))
        )
        return list(rows)


async def retire_connection(rt: Runtime, connection_id: uuid.UUID) -> None:
    """Stop the watch (best effort), revoke, and erase the tokens of a non-current connection."""
    async with rt.sessions() as session:
        conn = await session.get(EmailConnection, connection_id)
    if conn is None or conn.is_current or conn.token_ciphertext is None:
        return
    provider = rt.provider(conn.provider)
    tokens = rt.secrets.decrypt_tokens(conn.token_ciphertext)
    client = provider.client(tokens, _discard_refresh)
    try:
        if conn.watch_id and conn.watch_expires_at:
            await client.stop_watch(WatchState(conn.watch_id, conn.watch_expires_at))
        await provider.revoke(tokens)
    except Exception as exc:
        log.warning("cleanup of connection %s at the provider failed: %s", connection_id, type(exc).__name__)
    finally:
        await client.aclose()
    async with rt.sessions.begin() as session:
        await session.execute(
            update(EmailConnection)
            .where(EmailConnection.id == connection_id)
            .values(token_ciphertext=None, watch_id=None, watch_expires_at=None, client_state_hash=None, cursor=None)
        )


async def _discard_refresh(tokens: TokenSet) -> None:
    """Tokens refreshed while retiring a connection are about to be erased anyway."""


async def request_sync(rt: Runtime, *, sub_account_id: uuid.UUID, user_id: uuid.UUID) -> EmailConnection:
    async with rt.sessions.begin() as session:
        conn = await repo.current_connection(session, sub_account_id, user_id)
        if conn is None:
            raise ServiceError("NOT_CONNECTED", "no mailbox is connected")
        if conn.status == ConnectionStatus.REAUTH_REQUIRED:
            raise ServiceError("REAUTH_REQUIRED", "the mailbox must be connected again")
        await repo.bump_sync_request(session, conn.id)
    await enqueue_after_commit(rt.queue, "sync_mailbox", str(conn.id), safety_net="the periodic resume_pending_syncs job")
    return conn


async def set_status(
    rt: Runtime, connection_id: uuid.UUID, status: str, detail: str | None = None, *, error: str | None = None
) -> None:
    values: dict[str, object] = {"status": status, "status_detail": detail}
    if error is not None:
        values["last_error"] = error
    # A mailbox that must be connected again stays so until the user signs in again (which
    # does not come through here): a late job failing or finishing must not make it look
    # usable, or mail would be handed to a mailbox that cannot send.
    unchangeable = [ConnectionStatus.DISCONNECTED]
    if status != ConnectionStatus.REAUTH_REQUIRED:
        unchangeable.append(ConnectionStatus.REAUTH_REQUIRED)
    async with rt.sessions.begin() as session:
        # One conditional UPDATE (no read-then-write): a pass finishing after a disconnect or
        # "update email" must not revive the old mailbox, even if the disconnect commits meanwhile.
        conn = await session.scalar(
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
        events = [connection_event(conn)] if conn is not None else []
        await record_events(session, events)
    await rt.events.publish_all(events)


def connection_event(conn: EmailConnection) -> DomainEvent:
    return DomainEvent(type=EventType.CONNECTION_CHANGED, sub_account_id=str(conn.sub_account_id),
                       connection_id=str(conn.id), user_id=str(conn.user_id), status=conn.status)


async def publish_connection_event(rt: Runtime, conn: EmailConnection) -> None:
    """Announce ``conn`` as it is now, where no single change carries the news (a pass
    that finished): logged in a transaction of its own, then relayed."""
    events = [connection_event(conn)]
    async with rt.sessions.begin() as session:
        await record_events(session, events)
    await rt.events.publish_all(events)


def new_client_state() -> str:
    return secrets.token_urlsafe(32)
