"""Graph delta sync of the synced folders (Inbox, Sent Items), streamed page by page.

Cursor (what the engine stores, opaque to it)::

    {"v": 1, "folders": {"inbox":     {"next": <nextLink|None>, "delta": <deltaLink|None>},
                         "sentitems": {...}}}

A folder with ``next`` is mid-round (resume there); with only ``delta`` it is between
rounds (the next sync starts there); with neither it has never been synced (start a
full round with our ``$select``: Graph encodes query options into the links, so they
are given once). Every yielded ``SyncPage`` carries the *whole* cursor as it stands
after that page, so the engine commits the page's changes and the cursor together:
a crash replays at most one page (harmless: the engine dedupes).

At most two Graph pages are held at a time (``Prefer: odata.maxpagesize``): the one
the engine stores and the next, fetched meanwhile; so a mailbox of any size imports in
bounded memory. Attachments are listed (metadata only) for
the messages of a page that have any, concurrently within the client's limit of
4 requests; content is fetched later, on demand. A Graph ``410``/``syncStateNotFound``
surfaces as ``CursorExpiredError``: the engine restarts with ``cursor=None``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from sync_engine.domain import (
    AttachmentData,
    ChangeKind,
    CursorExpiredError,
    Folder,
    MailChange,
    NotFoundError,
    ProviderError,
    SyncPage,
)
from sync_engine.providers.outlook import mapping
from sync_engine.providers.outlook.graph_client import GraphClient
from sync_engine.providers.provider_support import abandon_prefetch

CURSOR_VERSION = 1
# Graph well-known folder names, synced in this order.
# Sent Items first: a message the user sent with the BCC sync address creates the contact
# and thread that the contact's reply in the Inbox then joins, within the same pass.
SYNCED_FOLDERS: tuple[tuple[str, Folder], ...] = (("sentitems", Folder.SENT), ("inbox", Folder.INBOX))


def empty_cursor() -> dict[str, Any]:
    return {"v": CURSOR_VERSION, "folders": {name: {"next": None, "delta": None} for name, _ in SYNCED_FOLDERS}}


def load_cursor(cursor: Mapping[str, Any] | None) -> dict[str, Any]:
    """A working copy of ``cursor``; unknown versions or shapes start a full sync."""
    fresh = empty_cursor()
    if not cursor:
        return fresh
    if cursor.get("v") != CURSOR_VERSION or not isinstance(cursor.get("folders"), Mapping):
        raise CursorExpiredError("unrecognised Outlook sync cursor")
    for name, _ in SYNCED_FOLDERS:
        state = cursor["folders"].get(name)
        if isinstance(state, Mapping):
            fresh["folders"][name] = {
                "next": state.get("next") if isinstance(state.get("next"), str) else None,
                "delta": state.get("delta") if isinstance(state.get("delta"), str) else None,
            }
    return fresh


def quote_id(provider_id: str) -> str:
    return quote(provider_id, safe="=")


async def list_attachments(graph: GraphClient, message_id: str) -> list[AttachmentData]:
    """Attachment metadata (no content) of one message, following pagination."""
    url: str | None = f"/me/messages/{quote_id(message_id)}/attachments"
    params: dict[str, str] | None = {"$select": mapping.ATTACHMENT_SELECT}
    found: list[AttachmentData] = []
    while url:
        page = await graph.get_json(url, params=params)
        params = None  # the nextLink carries the query
        for item in page.get("value") or []:
            if isinstance(item, Mapping):
                att = mapping.attachment_of(item)
                att.content = None  # metadata only
                found.append(att)
        url = page.get("@odata.nextLink")
    return found


class DeltaSync:
    def __init__(self, graph: GraphClient, page_size: int) -> None:
        self._graph = graph
        self._page_size = page_size

    async def pages(self, cursor: Mapping[str, Any] | None) -> AsyncIterator[SyncPage]:
        """Pages of every synced folder. The next Graph page of a folder is fetched (and its
        attachments listed) while the engine stores the current one: the import then runs
        at Graph's pace, not Graph's plus the database's. Two pages are held at most."""
        state = load_cursor(cursor)
        for index, (name, folder) in enumerate(SYNCED_FOLDERS):
            folder_state = state["folders"][name]
            last_folder = index == len(SYNCED_FOLDERS) - 1
            url = folder_state["next"] or folder_state["delta"]
            params: dict[str, str] | None = None
            if url is None:
                url = f"/me/mailFolders/{name}/messages/delta"
                params = {"$select": mapping.MESSAGE_SELECT}
            ahead: asyncio.Task[tuple[Mapping[str, Any], list[MailChange]]] | None = asyncio.create_task(self._page(url, params, folder))
            try:
                while ahead is not None:
                    page, changes = await ahead
                    ahead = None
                    next_link = _link(page, "@odata.nextLink")
                    delta_link = _link(page, "@odata.deltaLink")
                    if next_link:
                        folder_state["next"] = next_link
                        ahead = asyncio.create_task(self._page(next_link, None, folder))
                    elif delta_link:
                        folder_state["next"] = None
                        folder_state["delta"] = delta_link
                    else:
                        raise ProviderError("Graph delta page has neither nextLink nor deltaLink")
                    yield SyncPage(
                        changes=changes,
                        cursor=copy.deepcopy(state),
                        complete=last_folder and not next_link,
                    )
            finally:
                if ahead is not None:  # the consumer stopped (or failed) mid-folder
                    abandon_prefetch(ahead)

    async def _page(
        self, url: str, params: dict[str, str] | None, folder: Folder
    ) -> tuple[Mapping[str, Any], list[MailChange]]:
        page = await self._graph.get_json(url, params=params, prefer=(f"odata.maxpagesize={self._page_size}",))
        return page, await self._changes_of(page, folder)

    async def _changes_of(self, page: Mapping[str, Any], folder: Folder) -> list[MailChange]:
        items = [item for item in page.get("value") or [] if isinstance(item, Mapping) and item.get("id")]
        needs_listing = [
            item["id"]
            for item in items
            if not mapping.is_removed(item) and mapping.is_full_message(item) and mapping.may_have_attachments(item)
        ]
        listed = await asyncio.gather(*(self._attachments_or_none(mid) for mid in needs_listing))
        attachments = dict(zip(needs_listing, listed, strict=True))
        changes: list[MailChange] = []
        for item in items:
            if item["id"] in attachments and attachments[item["id"]] is None:
                # Gone between the delta page and the listing: it will come as @removed.
                continue
            change = mapping.change_of(item, folder, attachments.get(item["id"]) or ())
            if change is None:
                change = await self._fetch_change(item["id"], folder)
            changes.append(change)
        return changes

    async def _attachments_or_none(self, message_id: str) -> list[AttachmentData] | None:
        try:
            return await list_attachments(self._graph, message_id)
        except NotFoundError:
            return None

    async def _fetch_change(self, message_id: str, folder: Folder) -> MailChange:
        """A delta entry too partial to classify: read the message itself."""
        try:
            item = await self._graph.get_json(
                f"/me/messages/{quote_id(message_id)}", params={"$select": mapping.MESSAGE_SELECT}
            )
        except NotFoundError:
            return MailChange(kind=ChangeKind.REMOVED, provider_id=message_id)
        atts = await list_attachments(self._graph, message_id) if mapping.may_have_attachments(item) else []
        return MailChange(
            kind=ChangeKind.UPSERT, provider_id=message_id, message=mapping.message_of(item, folder, atts)
        )


def _link(page: Mapping[str, Any], key: str) -> str | None:
    value = page.get(key)
    return value if isinstance(value, str) and value else None
