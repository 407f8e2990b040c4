"""The Gmail provider: Google OAuth sign-in, the Gmail API, Pub/Sub push.

``GmailProvider`` is built once per process (``build_gmail_provider``; no network
until first use) and holds the OAuth client, the TLS context and the push verifier
(with its certs cache); ``GmailProvider.client(tokens, ...)`` makes one
``GmailMailboxClient`` per mailbox and job, with its own keep-alive pool and quota
pacer. Close clients with ``aclose()``.

Watches: ``users.watch`` publishes INBOX/SENT changes to the Pub/Sub topic of the
settings for 7 days; renewing is watching again (Google advises daily). Gmail has
no subscription id: ``WatchState.subscription_id`` is ``None`` and pushes are matched
by the mailbox address in the notification, authenticated by the OIDC token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_engine.domain import (
    AuthorizationRequest,
    ConnectedAccount,
    MailMessage,
    NotFoundError,
    OutgoingMessage,
    Provider,
    ProviderError,
    PushNotice,
    SentMessage,
    SyncPage,
    TokenSet,
    WatchState,
)
from sync_engine.providers.base import SendCheckpoint, TokensRefreshed
from sync_engine.providers.gmail import mapping
from sync_engine.providers.gmail.auth import GoogleAuth
from sync_engine.providers.gmail.gmail_client import GmailClient, message_path, quote_id
from sync_engine.providers.gmail.push import PushVerifier
from sync_engine.providers.gmail.quota import COSTS
from sync_engine.providers.gmail.send import send_message
from sync_engine.providers.gmail.sync import GmailSync
from sync_engine.providers.http_support import Sleep, make_ssl_context
from sync_engine.providers.provider_support import connected_account
from sync_engine.settings import Settings

WATCH_LIFETIME = timedelta(days=7)
WATCH_LABELS: tuple[str, ...] = (mapping.INBOX, mapping.SENT)


class GmailMailboxClient:
    """``MailboxClient`` over the Gmail API for one connected mailbox."""

    def __init__(self, api: GmailClient, topic: str, *, list_page_size: int = 500, batch_size: int = 50) -> None:
        self._api = api
        self._topic = topic
        self._list_page_size = list_page_size
        self._batch_size = batch_size

    @property
    def api(self) -> GmailClient:
        return self._api

    async def sync(self, cursor: Mapping[str, Any] | None) -> AsyncGenerator[SyncPage, None]:
        engine = GmailSync(self._api, list_page_size=self._list_page_size, batch_size=self._batch_size)
        async with contextlib.aclosing(engine.pages(cursor)) as pages:  # a stopped consumer stops the prefetch
            async for page in pages:
                yield page

    async def get_message(self, provider_id: str) -> MailMessage:
        item = await self._api.get_json(message_path(provider_id), cost=COSTS["messages.get"])
        return mapping.message_of(item)

    async def fetch_attachment(self, provider_message_id: str, provider_attachment_id: str) -> bytes:
        item = await self._api.get_json(
            f"messages/{quote_id(provider_message_id)}/attachments/{quote_id(provider_attachment_id)}",
            cost=COSTS["messages.attachments.get"],
        )
        data = item.get("data")
        if not isinstance(data, str):
            return b""
        try:
            return mapping.b64url_decode(data)
        except ValueError as exc:
            raise ProviderError("Gmail returned undecodable attachment data") from exc

    async def send(self, message: OutgoingMessage, checkpoint: SendCheckpoint) -> SentMessage:
        return await send_message(self._api, message, checkpoint)

    async def set_read(self, provider_id: str, is_read: bool) -> None:
        labels = {"removeLabelIds" if is_read else "addLabelIds": [mapping.UNREAD]}
        await self._api.post_json(
            f"messages/{quote_id(provider_id)}/modify", labels, cost=COSTS["messages.modify"], idempotent=True
        )

    async def watch(self, notification_url: str, client_state: str) -> WatchState:
        # The push endpoint and its authentication belong to the Pub/Sub subscription,
        # not to the watch: notification_url and client_state have no Gmail counterpart.
        response = await self._api.post_json(
            "watch",
            {"topicName": self._topic, "labelIds": list(WATCH_LABELS), "labelFilterBehavior": "include"},
            cost=COSTS["watch"],
            idempotent=True,
        )
        expires = mapping.millis_to_datetime(response.get("expiration"))
        return WatchState(subscription_id=None, expires_at=expires or datetime.now(UTC) + WATCH_LIFETIME)

    async def renew_watch(self, state: WatchState) -> WatchState:
        return await self.watch("", "")

    async def stop_watch(self, state: WatchState) -> None:
        try:
            await self._api.request("POST", "stop", cost=COSTS["stop"], content=b"", idempotent=True)
        except NotFoundError:
            pass  # nothing to stop

    async def aclose(self) -> None:
        await self._api.aclose()


class GmailProvider:
    """``MailProvider`` for Gmail / Google Workspace mailboxes."""

    provider = Provider.GMAIL

    def __init__(self, settings: Settings, *, sleep: Sleep | None = None) -> None:
        self._settings = settings
        self._sleep = sleep  # how clients wait out Retry-After, backoff and quota (None: asyncio.sleep)
        self._base = settings.gmail_base_url.rstrip("/")
        self._ssl: ssl.SSLContext | bool = make_ssl_context(settings.ca_bundle)
        self._auth = GoogleAuth(
            auth_uri=settings.google_auth_uri,
            token_uri=settings.google_token_uri,
            revoke_uri=settings.google_revoke_uri,
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret.get_secret_value(),
            ca_bundle=settings.ca_bundle,
            verify=self._ssl,
        )
        audience = settings.gmail_push_audience or f"{settings.public_base_url.rstrip('/')}/webhooks/gmail"
        self._push = PushVerifier(
            audience=audience,
            service_account=settings.gmail_push_service_account,
            certs_url=settings.google_certs_url,
            ca_bundle=settings.ca_bundle,
        )
        self.list_page_size = 500
        self.batch_size = 50

    @property
    def auth(self) -> GoogleAuth:
        return self._auth

    @property
    def push(self) -> PushVerifier:
        return self._push

    async def begin_authorization(self, redirect_uri: str, login_hint: str | None) -> AuthorizationRequest:
        return self._auth.begin(redirect_uri, login_hint)

    async def complete_authorization(
        self, flow: Mapping[str, Any], callback_params: Mapping[str, str], redirect_uri: str
    ) -> ConnectedAccount:
        tokens, name = await self._auth.complete_sign_in(flow, callback_params, redirect_uri)
        async with contextlib.aclosing(self._api(tokens, on_tokens_refreshed=None)) as api:
            profile = await api.get_json("profile", cost=COSTS["getProfile"])
        address = mapping.as_str(profile.get("emailAddress"))
        return connected_account(api.tokens, address, name, no_address="the signed-in account has no Gmail address")

    def client(self, tokens: TokenSet, on_tokens_refreshed: TokensRefreshed) -> GmailMailboxClient:
        return GmailMailboxClient(
            self._api(tokens, on_tokens_refreshed),
            self._settings.gmail_pubsub_topic,
            list_page_size=self.list_page_size,
            batch_size=self.batch_size,
        )

    def _api(self, tokens: TokenSet, on_tokens_refreshed: TokensRefreshed | None) -> GmailClient:
        return GmailClient(
            self._base,
            tokens,
            refresher=self._auth.refresh,
            on_tokens_refreshed=on_tokens_refreshed,
            verify=self._ssl,
            sleep=self._sleep,
        )

    async def revoke(self, tokens: TokenSet) -> None:
        # Revoking the refresh token ends the whole grant (and its access tokens).
        token = tokens.refresh_token or tokens.access_token
        if token:
            await self._auth.revoke(token)

    async def parse_push(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes
    ) -> list[PushNotice]:
        return await self._push.parse(headers, body)

    async def aclose(self) -> None:
        """Release pooled connections (not part of ``MailProvider``; optional)."""
        await asyncio.to_thread(self._auth.close)


def build_gmail_provider(settings: Settings, *, sleep: Sleep | None = None) -> GmailProvider:
    """The Gmail provider for ``settings`` (no network I/O until first use); ``sleep``
    replaces ``asyncio.sleep`` for the clients' retry and quota waits (tests record them)."""
    return GmailProvider(settings, sleep=sleep)
