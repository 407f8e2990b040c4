"""The contract every mailbox provider adapter fulfils.

Adapters speak the provider's wire protocol (Microsoft Graph with msal, Gmail
with google-auth) and the domain's types (``sync_engine.domain``) — nothing
else. They hold no database handle: the services persist what they return.

Rules for implementers:
- Synchronous libraries (msal, google-auth transports) run off the event loop
  (``asyncio.to_thread``).
- 429/503 with ``Retry-After`` are honoured inside the adapter (sleep, retry,
  bounded); when the budget is spent, raise ``ThrottledError(retry_after)``.
- An invalid/expired delta or history cursor raises ``CursorExpiredError``.
- A revoked grant / invalid refresh token raises ``AuthRevokedError``.
- When an access token is refreshed, the adapter awaits ``on_tokens_refreshed``
  so the new tokens are stored (encrypted) before they are relied upon.
- Never log tokens, secrets, or message bodies.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from sync_engine.domain import (
    AuthorizationRequest,
    ConnectedAccount,
    MailMessage,
    OutgoingMessage,
    Provider,
    PushNotice,
    SentMessage,
    SyncPage,
    TokenSet,
    WatchState,
)

TokensRefreshed = Callable[[TokenSet], Awaitable[None]]


class SendCheckpoint(Protocol):
    """Durable progress of one outbound send, kept in the outbox row."""

    @property
    def state(self) -> Mapping[str, Any]:
        """What a previous attempt saved (empty on the first attempt)."""
        ...

    async def save(self, state: Mapping[str, Any]) -> None:
        """Persist (commit) progress before the provider call that sends."""
        ...


class MailboxClient(Protocol):
    """Operations on one connected mailbox, authenticated with its tokens."""

    def sync(self, cursor: Mapping[str, Any] | None) -> AsyncGenerator[SyncPage, None]:
        """Changes since ``cursor`` (None: a full sync of the synced folders),
        page by page. Each page carries the cursor to persist with it. A generator: the
        caller closes it when it stops early (an adapter may be fetching the next page)."""
        ...

    async def get_message(self, provider_id: str) -> MailMessage:
        """One message, in full (raises ``NotFoundError``)."""
        ...

    async def fetch_attachment(self, provider_message_id: str, provider_attachment_id: str) -> bytes:
        ...

    async def send(self, message: OutgoingMessage, checkpoint: SendCheckpoint) -> SentMessage:
        """Send through the mailbox so it lands in the owner's Sent folder.
        A reply (``reply_to_provider_id``/``thread_key``) joins the provider thread.

        Must never send twice across retries: before the irreversible step the
        adapter saves its progress with ``checkpoint.save`` (committed by the
        engine); a retry receives that state in ``checkpoint.state`` and first
        checks whether the earlier attempt went out (e.g. the Graph draft is no
        longer a draft; Gmail has a message with our Message-ID)."""
        ...

    async def set_read(self, provider_id: str, is_read: bool) -> None:
        ...

    async def watch(self, notification_url: str, client_state: str) -> WatchState:
        """Register for change notifications (Graph subscription / Gmail watch)."""
        ...

    async def renew_watch(self, state: WatchState) -> WatchState:
        ...

    async def stop_watch(self, state: WatchState) -> None:
        ...

    async def aclose(self) -> None:
        ...


class MailProvider(Protocol):
    """A provider: OAuth sign-in, push parsing, and a factory of mailbox clients."""

    provider: Provider

    async def begin_authorization(self, redirect_uri: str, login_hint: str | None) -> AuthorizationRequest:
        ...

    async def complete_authorization(
        self, flow: Mapping[str, Any], callback_params: Mapping[str, str], redirect_uri: str
    ) -> ConnectedAccount:
        """Exchange the callback's code (PKCE verified by the provider); returns tokens and
        the mailbox address."""
        ...

    def client(self, tokens: TokenSet, on_tokens_refreshed: TokensRefreshed) -> MailboxClient:
        ...

    async def revoke(self, tokens: TokenSet) -> None:
        """Best-effort revocation of the grant (disconnect)."""
        ...

    async def parse_push(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes
    ) -> list[PushNotice]:
        """Authenticate (where the provider signs pushes) and parse a push request.
        Raises ``PushRejected`` for an unauthenticated or malformed push."""
        ...


class PushRejected(Exception):
    """A push request that is not authentic or not well-formed; nothing is done with it."""
