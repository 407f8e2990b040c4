"""The Outlook provider: Microsoft identity platform sign-in and Microsoft Graph mail.

``OutlookProvider`` is built once per process (``build_outlook_provider``) and holds
the msal application and the TLS context; ``OutlookProvider.client(tokens, ...)``
makes one ``OutlookMailboxClient`` per mailbox and job, each with its own HTTP/1.1
keep-alive pool and its limit of 4 concurrent Graph requests. Close clients with
``aclose()``.

Revocation: the identity platform has no endpoint that revokes one refresh token
(``revokeSignInSessions`` would sign the user out of every app). Disconnecting
deletes the Graph subscription and erases our tokens; the grant then expires
unused. ``revoke`` is therefore a documented no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sync_engine.domain import (
    AuthorizationRequest,
    ConnectedAccount,
    Folder,
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
from sync_engine.providers.http_support import Sleep, make_ssl_context
from sync_engine.providers.outlook import mapping
from sync_engine.providers.outlook.auth import MsalAuth
from sync_engine.providers.outlook.graph_client import GraphClient
from sync_engine.providers.outlook.push import parse_notifications
from sync_engine.providers.outlook.send import send_message
from sync_engine.providers.outlook.sync import DeltaSync, list_attachments, quote_id
from sync_engine.providers.provider_support import connected_account
from sync_engine.settings import Settings

# Graph: message subscriptions live at most 4,230 minutes; ask a little less.
SUBSCRIPTION_LIFETIME = timedelta(minutes=4200)
SUBSCRIPTION_CHANGE_TYPES = "created,updated,deleted"
SUBSCRIPTION_RESOURCE = "me/messages"


def lifecycle_url(notification_url: str) -> str:
    """The lifecycle notification URL: the notification URL with ``lifecycle=1``."""
    parts = urlsplit(notification_url)
    query = f"{parts.query}&lifecycle=1" if parts.query else "lifecycle=1"
    return urlunsplit(parts._replace(query=query))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


class OutlookMailboxClient:
    """``MailboxClient`` over Microsoft Graph for one connected mailbox."""

    def __init__(self, graph: GraphClient, page_size: int) -> None:
        self._graph = graph
        self._page_size = page_size
        self._folder_ids: dict[str, Folder] | None = None
        self._folder_lock = asyncio.Lock()

    @property
    def graph(self) -> GraphClient:
        return self._graph

    async def sync(self, cursor: Mapping[str, Any] | None) -> AsyncGenerator[SyncPage, None]:
        # A stopped consumer stops the page fetched ahead at once, not when the GC finds it.
        async with contextlib.aclosing(DeltaSync(self._graph, self._page_size).pages(cursor)) as pages:
            async for page in pages:
                yield page

    async def get_message(self, provider_id: str) -> MailMessage:
        item = await self._graph.get_json(
            f"/me/messages/{quote_id(provider_id)}", params={"$select": mapping.MESSAGE_SELECT}
        )
        folder = await self._folder_of(item.get("parentFolderId"))
        attachments = await list_attachments(self._graph, provider_id) if mapping.may_have_attachments(item) else []
        return mapping.message_of(item, folder, attachments)

    async def _folder_of(self, parent_folder_id: Any) -> Folder:
        async with self._folder_lock:
            if self._folder_ids is None:
                ids: dict[str, Folder] = {}
                for name, folder in (("inbox", Folder.INBOX), ("sentitems", Folder.SENT)):
                    info = await self._graph.get_json(f"/me/mailFolders/{name}", params={"$select": "id"})
                    if isinstance(info.get("id"), str):
                        ids[info["id"]] = folder
                self._folder_ids = ids
        return self._folder_ids.get(parent_folder_id, Folder.INBOX) if isinstance(parent_folder_id, str) else Folder.INBOX

    async def fetch_attachment(self, provider_message_id: str, provider_attachment_id: str) -> bytes:
        path = f"/me/messages/{quote_id(provider_message_id)}/attachments/{quote_id(provider_attachment_id)}"
        item = await self._graph.get_json(path)
        content = item.get("contentBytes")
        if isinstance(content, str):
            return mapping.attachment_of(item).content or b""
        # itemAttachment / referenceAttachment: the raw MIME (or link) via $value.
        response = await self._graph.request("GET", f"{path}/$value")
        return response.content

    async def send(self, message: OutgoingMessage, checkpoint: SendCheckpoint) -> SentMessage:
        return await send_message(self._graph, message, checkpoint)

    async def set_read(self, provider_id: str, is_read: bool) -> None:
        await self._graph.patch_json(f"/me/messages/{quote_id(provider_id)}", {"isRead": bool(is_read)})

    async def watch(self, notification_url: str, client_state: str) -> WatchState:
        expires = datetime.now(UTC) + SUBSCRIPTION_LIFETIME
        created = await self._graph.post_json(
            "/subscriptions",
            {
                "changeType": SUBSCRIPTION_CHANGE_TYPES,
                "notificationUrl": notification_url,
                "lifecycleNotificationUrl": lifecycle_url(notification_url),
                "resource": SUBSCRIPTION_RESOURCE,
                "expirationDateTime": _iso(expires),
                "clientState": client_state,
                "latestSupportedTlsVersion": "v1_2",
            },
        )
        return _watch_state_of(created, fallback=expires)

    async def renew_watch(self, state: WatchState) -> WatchState:
        if not state.subscription_id:
            raise NotFoundError("no Graph subscription to renew")
        expires = datetime.now(UTC) + SUBSCRIPTION_LIFETIME
        renewed = await self._graph.patch_json(
            f"/subscriptions/{quote_id(state.subscription_id)}", {"expirationDateTime": _iso(expires)}
        )
        return _watch_state_of({"id": state.subscription_id, **renewed}, fallback=expires)

    async def stop_watch(self, state: WatchState) -> None:
        if not state.subscription_id:
            return
        try:
            await self._graph.request("DELETE", f"/subscriptions/{quote_id(state.subscription_id)}")
        except NotFoundError:
            pass  # already gone (expired or removed): the goal is reached

    async def aclose(self) -> None:
        await self._graph.aclose()


def _watch_state_of(subscription: Mapping[str, Any], *, fallback: datetime) -> WatchState:
    sub_id = subscription.get("id")
    if not isinstance(sub_id, str) or not sub_id:
        raise ProviderError("Graph subscription response without an id")
    expires = mapping.as_datetime(subscription.get("expirationDateTime")) or fallback
    return WatchState(subscription_id=sub_id, expires_at=expires)


class OutlookProvider:
    """``MailProvider`` for Outlook / Microsoft 365 mailboxes."""

    provider = Provider.OUTLOOK

    def __init__(self, settings: Settings, *, sleep: Sleep | None = None) -> None:
        self._settings = settings
        self._sleep = sleep  # how clients wait out Retry-After and backoff (None: asyncio.sleep)
        self._graph_base = settings.graph_base_url.rstrip("/")
        self._ssl: ssl.SSLContext | bool = make_ssl_context(settings.ca_bundle)
        self._auth = MsalAuth(
            authority=settings.microsoft_authority,
            client_id=settings.microsoft_client_id,
            client_secret=settings.microsoft_client_secret.get_secret_value(),
            ca_bundle=settings.ca_bundle,
        )

    @property
    def auth(self) -> MsalAuth:
        return self._auth

    async def begin_authorization(self, redirect_uri: str, login_hint: str | None) -> AuthorizationRequest:
        return await self._auth.begin(redirect_uri, login_hint)

    async def complete_authorization(
        self, flow: Mapping[str, Any], callback_params: Mapping[str, str], redirect_uri: str
    ) -> ConnectedAccount:
        tokens = await self._auth.complete(flow, callback_params, redirect_uri)
        async with contextlib.aclosing(self._graph_client(tokens, on_tokens_refreshed=None)) as graph:
            me = await graph.get_json("/me", params={"$select": "mail,userPrincipalName,displayName"})
        address = mapping.as_str(me.get("mail")) or mapping.as_str(me.get("userPrincipalName"))
        name = mapping.as_str(me.get("displayName"))
        return connected_account(
            graph.tokens, address, name or None, no_address="the signed-in account has no mailbox address"
        )

    def client(self, tokens: TokenSet, on_tokens_refreshed: TokensRefreshed) -> OutlookMailboxClient:
        graph = self._graph_client(tokens, on_tokens_refreshed=on_tokens_refreshed)
        return OutlookMailboxClient(graph, self._settings.graph_page_size)

    def _graph_client(self, tokens: TokenSet, on_tokens_refreshed: TokensRefreshed | None) -> GraphClient:
        return GraphClient(
            self._graph_base,
            tokens,
            refresher=self._auth.refresh,
            on_tokens_refreshed=on_tokens_refreshed,
            verify=self._ssl,
            sleep=self._sleep,
        )

    async def aclose(self) -> None:
        """Release pooled connections (not part of ``MailProvider``; optional)."""
        await asyncio.to_thread(self._auth.close)

    async def revoke(self, tokens: TokenSet) -> None:
        # No per-grant revocation exists (see the module docstring): dropping the
        # tokens, which the services do, is the disconnect.
        return None

    async def parse_push(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes
    ) -> list[PushNotice]:
        return parse_notifications(body)


def build_outlook_provider(settings: Settings, *, sleep: Sleep | None = None) -> OutlookProvider:
    """The Outlook provider for ``settings`` (no network I/O until first use); ``sleep``
    replaces ``asyncio.sleep`` for the clients' retry waits (tests record them)."""
    return OutlookProvider(settings, sleep=sleep)
