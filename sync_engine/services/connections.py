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

from db.models import ConnectionStatus, EmailConnection, OAuthFlow
from db.repositories import connections as repo
from db.repositories import tenancy
from db.repositories.mailbox_history import adopt_previous_mailbox
from sync_engine.crypto import SecretBox, sha256_hex
from sync_engine.domain import ConnectedAccount, Provider, TokenSet, WatchState
from sync_engine.events import record_events
from sync_engine.job_queue import Jobs
from sync_engine.services.collaborators import Clock, EventPublisher, SessionFactory
from sync_engine.services.connection_status import connection_event
from sync_engine.services.errors import NotFound, ServiceError
from sync_engine.services.mailboxes import Mailboxes

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


def callback_url(public_base_url: str, provider: Provider) -> str:
    return f"{public_base_url.rstrip('/')}/oauth/{provider.value}/callback"


def webhook_url(public_base_url: str, provider: Provider) -> str:
    path = "graph" if provider is Provider.OUTLOOK else "gmail"
    return f"{public_base_url.rstrip('/')}/webhooks/{path}"


def new_client_state() -> str:
    return secrets.token_urlsafe(32)


async def _discard_refresh(tokens: TokenSet) -> None:
    """Tokens refreshed while retiring a connection are about to be erased anyway."""


@dataclass(frozen=True)
class ConnectionService:
    sessions: SessionFactory
    secrets: SecretBox
    mailboxes: Mailboxes
    events: EventPublisher
    jobs: Jobs
    clock: Clock
    public_base_url: str

    async def start_connection(self, *, sub_account_id: uuid.UUID, user_id: uuid.UUID, provider: Provider,
                               return_to: str | None, login_hint: str | None = None) -> str:
        if not self.mailboxes.configured(provider):
            raise ServiceError("PROVIDER_UNAVAILABLE", f"{provider.value} is not configured", "provider")
        async with self.sessions() as session:
            if not await tenancy.is_member(session, sub_account_id, user_id):
                raise NotFound("user")
        redirect = callback_url(self.public_base_url, provider)
        request = await self.mailboxes.provider(provider).begin_authorization(redirect, login_hint)
        now = self.clock()
        async with self.sessions.begin() as session:
            await repo.start_flow(session, OAuthFlow(
                state=request.state, sub_account_id=sub_account_id, user_id=user_id, provider=provider.value,
                flow_ciphertext=self.secrets.encrypt_json(request.flow), return_to=return_to,
                expires_at=now + FLOW_LIFETIME,
            ), now)
        return request.url

    async def accept_provider_answer(self, *, provider: Provider, params: Mapping[str, str]) -> ProviderAnswer:
        """The provider's answer at the callback: park it and issue the flow token (step 2)."""
        state = params.get("state", "")
        now = self.clock()
        if "error" in params:
            async with self.sessions.begin() as session:
                flow_row = await repo.take_pending_flow(session, state, provider.value)
            if flow_row is None or flow_row.expires_at < now:
                return ProviderAnswer(None, None, "unknown_or_expired_state")
            return ProviderAnswer(flow_row.return_to, None, params.get("error") or "access_denied")
        if not params.get("code"):
            return ProviderAnswer(None, None, "no_authorization_code")
        token = secrets.token_urlsafe(32)
        async with self.sessions.begin() as session:
            flow_row = await repo.park_provider_answer(
                session, state, provider.value, now, token_hash=sha256_hex(token),
                answer_ciphertext=self.secrets.encrypt_json(dict(params)), expires_at=now + FLOW_TOKEN_LIFETIME)
        if flow_row is None:
            return ProviderAnswer(None, None, "unknown_or_expired_state")
        return ProviderAnswer(flow_row.return_to, token, None)

    async def complete_connection(self, *, sub_account_id: uuid.UUID, user_id: uuid.UUID,
                                  flow_token: str) -> uuid.UUID:
        """Confirm a sign-in (step 3): the caller must be the user, of the sub-account, that
        started it. Returns the id of the now current connection."""
        if not flow_token or len(flow_token) > FLOW_TOKEN_MAX_LENGTH:
            raise NotFound("sign-in", "flowToken")
        async with self.sessions.begin() as session:
            flow_row = await repo.take_answered_flow(session, sha256_hex(flow_token))
        if flow_row is None or flow_row.answer_ciphertext is None or flow_row.expires_at < self.clock():
            raise NotFound("sign-in", "flowToken")
        if flow_row.user_id != user_id or flow_row.sub_account_id != sub_account_id:
            log.warning("a sign-in was presented by another user than the one who started it; it was discarded")
            raise NotFound("sign-in", "flowToken")
        provider = Provider(flow_row.provider)
        if not self.mailboxes.configured(provider):
            raise ServiceError("PROVIDER_UNAVAILABLE", f"{provider.value} is not configured")
        try:
            account = await self.mailboxes.provider(provider).complete_authorization(
                self.secrets.decrypt_json(flow_row.flow_ciphertext),
                self.secrets.decrypt_json(flow_row.answer_ciphertext),
                callback_url(self.public_base_url, provider),
            )
        except Exception as exc:  # the provider's refusal, shown to the user as a code only
            log.warning("sign-in with %s failed: %s", provider.value, type(exc).__name__)
            raise ServiceError("PROVIDER_ERROR", "the provider refused the sign-in (code exchange failed): "
                                                 "start again") from None
        return await self._connect(flow_row, provider, account)

    async def _connect(self, flow_row: OAuthFlow, provider: Provider, account: ConnectedAccount) -> uuid.UUID:
        """Make the signed-in mailbox the user's current connection."""
        now = self.clock()
        async with self.sessions.begin() as session:
            current = await repo.lock_current_connection(session, flow_row.sub_account_id, flow_row.user_id)
            replaced: EmailConnection | None = None
            same_mailbox = (current is not None and current.provider == provider.value
                            and current.address.lower() == account.address.lower())
            if current is not None and same_mailbox:
                conn = current  # re-authorisation of the same mailbox keeps its cursor and history
            else:
                if current is not None:
                    replaced = current
                    current.is_current = False
                    current.status = ConnectionStatus.DISCONNECTED
                    current.status_detail = "replaced by another mailbox"
                    current.disconnected_at = now
                    await session.flush()
                conn = EmailConnection(sub_account_id=flow_row.sub_account_id, user_id=flow_row.user_id,
                                       provider=provider.value, address=account.address, is_current=True)
                session.add(conn)
                await session.flush()
                await adopt_previous_mailbox(session, new_connection_id=conn.id, user_id=flow_row.user_id,
                                             provider=provider.value, address=account.address)
            conn.display_name = account.display_name
            conn.token_ciphertext = self.secrets.encrypt_tokens(account.tokens)
            conn.status = ConnectionStatus.ACTIVE
            conn.status_detail = None
            conn.last_error = None
            conn.connected_at = now
            await session.flush()
            conn_id = conn.id
            events = [connection_event(c) for c in (replaced, conn) if c is not None]
            await record_events(session, events)

        # The sign-in is committed: the user must not be told it failed because the queue is down.
        await self.events.publish_all(events)
        if replaced is not None:
            await self.jobs.retire_connection(replaced.id, after_commit=True)
        if not await self.jobs.setup_connection(conn_id, after_commit=True):
            # Record the first import as requested: the periodic resume_pending_syncs job runs it
            # within a minute of the queue's return, instead of waiting for the hourly watch job.
            async with self.sessions.begin() as session:
                await repo.bump_sync_request(session, conn_id)
        return conn_id

    async def disconnect_connection(self, *, sub_account_id: uuid.UUID, user_id: uuid.UUID) -> EmailConnection:
        async with self.sessions.begin() as session:
            conn = await repo.current_connection(session, sub_account_id, user_id)
            if conn is None:
                raise ServiceError("NOT_CONNECTED", "no mailbox is connected")
            conn.is_current = False
            conn.status = ConnectionStatus.DISCONNECTED
            conn.status_detail = "disconnected by the user"
            conn.disconnected_at = self.clock()
            await session.flush()
            events = [connection_event(conn)]
            await record_events(session, events)
        await self.events.publish_all(events)
        # Stop the provider's push and erase tokens now, so nothing syncs any more either way.
        await self.retire_connection(conn.id)
        return conn

    async def unretired_connections(self) -> list[uuid.UUID]:
        """Replaced or disconnected connections that still hold tokens (their retire job was lost)."""
        async with self.sessions() as session:
            return await repo.unretired_connection_ids(session)

    async def retire_connection(self, connection_id: uuid.UUID) -> None:
        """Stop the watch (best effort), revoke, and erase the tokens of a non-current connection."""
        async with self.sessions() as session:
            conn = await repo.by_id(session, connection_id)
        if conn is None or conn.is_current or conn.token_ciphertext is None:
            return
        provider = self.mailboxes.provider(conn.provider)
        tokens = self.secrets.decrypt_tokens(conn.token_ciphertext)
        client = provider.client(tokens, _discard_refresh)
        try:
            if conn.watch_id and conn.watch_expires_at:
                await client.stop_watch(WatchState(conn.watch_id, conn.watch_expires_at))
            await provider.revoke(tokens)
        except Exception as exc:
            log.warning("cleanup of connection %s at the provider failed: %s", connection_id, type(exc).__name__)
        finally:
            await client.aclose()
        async with self.sessions.begin() as session:
            await repo.erase_secrets(session, connection_id)

    async def request_sync(self, *, sub_account_id: uuid.UUID, user_id: uuid.UUID) -> EmailConnection:
        async with self.sessions.begin() as session:
            conn = await repo.current_connection(session, sub_account_id, user_id)
            if conn is None:
                raise ServiceError("NOT_CONNECTED", "no mailbox is connected")
            if conn.status == ConnectionStatus.REAUTH_REQUIRED:
                raise ServiceError("REAUTH_REQUIRED", "the mailbox must be connected again")
            await repo.bump_sync_request(session, conn.id)
        await self.jobs.sync_mailbox(conn.id, after_commit=True)
        return conn
