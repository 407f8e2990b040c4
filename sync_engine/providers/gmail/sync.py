"""Gmail sync: a full pass over INBOX and SENT, then ``history.list`` increments.

Cursor (stored by the engine with each page, opaque to it)::

    {"v": 1, "history_id": "<id>"}                                   between passes
    {"v": 1, "history_id": "<id>", "full": {"label": "INBOX"|"SENT",
                                            "page_token": <str|None>, "after": <message id|None>}}

**Full pass** (``cursor=None``): ``getProfile.historyId`` is recorded *first*, so
that the increments after the pass replay whatever changed during it (harmless: the
engine dedupes). Each label is listed with ``messages.list`` (500 ids a page, 5
units) and its messages are fetched ``format=full`` through the batch endpoint (50 a
batch, 5 units each): 5.01 units a message. Every batch becomes one ``SyncPage``
whose cursor is the position after it (the list page token, and the last message
of the batch within that page), so a crash mid-pass resumes at the next batch. The
position is a message id, not an offset: if messages of the page were deleted in the
meantime nothing is skipped, and if that message itself is gone the whole page is
replayed (harmless). A stale page token in a stored cursor
restarts the pass (``CursorExpiredError``). A message labelled both INBOX and SENT
(mail to oneself) is fetched in both listings; the engine dedupes it.

**Increments**: ``history.list(startHistoryId, historyTypes=messageAdded,
messageDeleted,labelAdded,labelRemoved)``, 100 records a page (2 units). Within a
page the records are folded per message, in order: added to INBOX/SENT (not a draft)
-> fetched and ``UPSERT``; deleted, or ``TRASH``/``SPAM`` added -> ``REMOVED``;
``UNREAD`` added/removed -> ``READ_STATE`` (dropped when the message is fetched
anyway: the fetch is newer). A message gone before its fetch is ``REMOVED``. An
intermediate page's cursor is the last history record id of the page (records
"after" it are what remains); the last page's is the response's ``historyId``.
``404`` (history too old) -> ``CursorExpiredError``: the engine runs a full pass.

At most one list page and two batches of messages are held at a time (the next
batch is fetched while the engine stores the current page).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync_engine.domain import ChangeKind, CursorExpiredError, MailChange, NotFoundError, ProviderError, SyncPage
from sync_engine.providers.gmail import mapping
from sync_engine.providers.gmail.gmail_client import GmailClient, GmailError, message_path
from sync_engine.providers.gmail.mapping import DRAFT, INBOX, SENT, SPAM, SYNCED_LABELS, TRASH, UNREAD
from sync_engine.providers.gmail.quota import BATCH_ADVISED, COSTS, LIST_PAGE_MAX
from sync_engine.providers.provider_support import abandon_prefetch

CURSOR_VERSION = 1
LABEL_ORDER: tuple[str, ...] = (INBOX, SENT)
HISTORY_TYPES: tuple[str, ...] = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
HISTORY_PAGE_SIZE = 100


@dataclass(slots=True)
class FullPosition:
    label: str
    page_token: str | None = None
    after: str | None = None  # the last message done in that list page

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "page_token": self.page_token, "after": self.after}


def load_cursor(cursor: Mapping[str, Any] | None) -> tuple[str | None, FullPosition | None]:
    """(history id, full-pass position); ``(None, None)`` means a fresh full pass.
    A cursor this version cannot read raises ``CursorExpiredError`` (full resync)."""
    if not cursor:
        return None, None
    if cursor.get("v") != CURSOR_VERSION:
        raise CursorExpiredError("unrecognised Gmail sync cursor")
    history_id = mapping.history_id_of(cursor.get("history_id"))
    if history_id is None:
        raise CursorExpiredError("Gmail sync cursor without a historyId")
    full = cursor.get("full")
    if full is None:
        return history_id, None
    if not isinstance(full, Mapping) or full.get("label") not in LABEL_ORDER:
        raise CursorExpiredError("unreadable full-sync position in the Gmail cursor")
    token, after = full.get("page_token"), full.get("after")
    if (token is not None and not isinstance(token, str)) or (after is not None and not isinstance(after, str)):
        raise CursorExpiredError("unreadable full-sync position in the Gmail cursor")
    return history_id, FullPosition(full["label"], token or None, after or None)


def cursor_of(history_id: str, position: FullPosition | None = None) -> dict[str, Any]:
    cursor: dict[str, Any] = {"v": CURSOR_VERSION, "history_id": history_id}
    if position is not None:
        cursor["full"] = position.as_json()
    return cursor


class GmailSync:
    def __init__(
        self,
        api: GmailClient,
        *,
        list_page_size: int = LIST_PAGE_MAX,
        batch_size: int = BATCH_ADVISED,
        history_page_size: int = HISTORY_PAGE_SIZE,
    ) -> None:
        self._api = api
        self._list_page_size = max(1, min(list_page_size, LIST_PAGE_MAX))
        self._batch_size = max(1, batch_size)
        self._history_page_size = max(1, min(history_page_size, 500))

    async def pages(self, cursor: Mapping[str, Any] | None) -> AsyncIterator[SyncPage]:
        history_id, position = load_cursor(cursor)
        if history_id is None:
            profile = await self._api.get_json("profile", cost=COSTS["getProfile"])
            history_id = mapping.history_id_of(profile.get("historyId"))
            if history_id is None:
                raise ProviderError("Gmail profile without a historyId")
            position = FullPosition(LABEL_ORDER[0])
        if position is not None:
            async for page in self._full(history_id, position):
                yield page
        else:
            async for page in self._incremental(history_id):
                yield page

    # ---- full pass

    async def _full(self, start_history_id: str, resume: FullPosition) -> AsyncIterator[SyncPage]:
        """Pages of the full pass. The next batch is fetched while the engine stores the
        current page (two batches in flight at most): the import then runs at Gmail's
        pace, not Gmail's plus the database's."""
        inflight: tuple[asyncio.Task[list[MailChange]], FullPosition | None] | None = None
        try:
            async for ids, position in self._chunks(resume):
                task = asyncio.create_task(self._fetch_full(ids))
                if inflight is not None:
                    previous, previous_position = inflight
                    inflight = (task, position)
                    changes = await previous
                    yield SyncPage(changes=changes, cursor=cursor_of(start_history_id, previous_position))
                else:
                    inflight = (task, position)
            final = cursor_of(start_history_id)
            if inflight is None:
                yield SyncPage(changes=[], cursor=final, complete=True)
                return
            last, _ = inflight
            changes = await last
            inflight = None
            yield SyncPage(changes=changes, cursor=final, complete=True)
        finally:
            if inflight is not None:  # the consumer stopped (or failed) mid-pass
                abandon_prefetch(inflight[0])

    async def _chunks(self, resume: FullPosition) -> AsyncIterator[tuple[list[str], FullPosition | None]]:
        """(message ids of one batch, the position after it), listing label by label."""
        labels = LABEL_ORDER[LABEL_ORDER.index(resume.label) :]
        for index, label in enumerate(labels):
            token = resume.page_token if index == 0 else None
            after = resume.after if index == 0 else None
            from_cursor = token is not None
            following = FullPosition(labels[index + 1]) if index + 1 < len(labels) else None
            while True:
                ids, next_token = await self._list(label, token, from_cursor=from_cursor)
                from_cursor = False
                first = ids.index(after) + 1 if after in ids else 0
                for start in range(first, len(ids), self._batch_size):
                    chunk = ids[start : start + self._batch_size]
                    if start + len(chunk) < len(ids):
                        yield chunk, FullPosition(label, token, chunk[-1])
                    elif next_token:
                        yield chunk, FullPosition(label, next_token)
                    else:
                        yield chunk, following
                after = None
                if not next_token:
                    break
                token = next_token

    async def _list(self, label: str, token: str | None, *, from_cursor: bool) -> tuple[list[str], str | None]:
        params = [("labelIds", label), ("maxResults", str(self._list_page_size))]
        if token:
            params.append(("pageToken", token))
        try:
            listing = await self._api.get_json("messages", cost=COSTS["messages.list"], params=params)
        except (NotFoundError, GmailError) as exc:
            stale = isinstance(exc, NotFoundError) or exc.status == 400
            if from_cursor and stale:
                raise CursorExpiredError("the stored Gmail list position is no longer valid") from exc
            raise
        ids = [
            m["id"]
            for m in listing.get("messages") or []
            if isinstance(m, Mapping) and isinstance(m.get("id"), str) and m["id"]
        ]
        next_token = listing.get("nextPageToken")
        return ids, next_token if isinstance(next_token, str) and next_token else None

    async def _fetch_full(self, ids: Sequence[str]) -> list[MailChange]:
        items = await self._api.get_many(
            [message_path(i) for i in ids], cost_each=COSTS["messages.get"], batch_size=self._batch_size
        )
        changes: list[MailChange] = []
        for message_id, item in zip(ids, items, strict=True):
            if item is None:
                continue  # deleted since it was listed; the increments report it
            if not mapping.is_synced(mapping.labels_of(item)):
                continue
            changes.append(MailChange(kind=ChangeKind.UPSERT, provider_id=message_id, message=mapping.message_of(item)))
        return changes

    # ---- increments

    async def _incremental(self, start_history_id: str) -> AsyncIterator[SyncPage]:
        current = start_history_id
        token: str | None = None
        while True:
            params = [("startHistoryId", start_history_id), ("maxResults", str(self._history_page_size))]
            params += [("historyTypes", t) for t in HISTORY_TYPES]
            if token:
                params.append(("pageToken", token))
            try:
                page = await self._api.get_json("history", cost=COSTS["history.list"], params=params)
            except NotFoundError as exc:
                raise CursorExpiredError("Gmail history is no longer available from this historyId") from exc
            except GmailError as exc:
                if exc.status == 400 and "history" in str(exc).lower():
                    raise CursorExpiredError("Gmail refused the stored historyId") from exc
                raise
            records = [r for r in page.get("history") or [] if isinstance(r, Mapping)]
            changes = await self._changes_of(records)
            last_record = None
            for record in records:
                last_record = mapping.later_history_id(last_record, mapping.history_id_of(record.get("id")))
            next_token = page.get("nextPageToken")
            if isinstance(next_token, str) and next_token:
                current = mapping.later_history_id(current, last_record) or current
                yield SyncPage(changes=changes, cursor=cursor_of(current))
                token = next_token
                continue
            current = mapping.later_history_id(current, last_record) or current
            current = mapping.later_history_id(current, mapping.history_id_of(page.get("historyId"))) or current
            yield SyncPage(changes=changes, cursor=cursor_of(current), complete=True)
            return

    async def _changes_of(self, records: Sequence[Mapping[str, Any]]) -> list[MailChange]:
        plan = fold_history(records)
        to_fetch = [mid for mid, step in plan.items() if step.action == "fetch"]
        fetched: dict[str, Mapping[str, Any] | None] = {}
        if to_fetch:
            items = await self._api.get_many(
                [message_path(i) for i in to_fetch], cost_each=COSTS["messages.get"], batch_size=self._batch_size
            )
            fetched = dict(zip(to_fetch, items, strict=True))
        changes: list[MailChange] = []
        for message_id, step in plan.items():
            if step.action == "removed":
                changes.append(MailChange(kind=ChangeKind.REMOVED, provider_id=message_id))
            elif step.action == "read":
                changes.append(MailChange(kind=ChangeKind.READ_STATE, provider_id=message_id, is_read=step.is_read))
            else:
                change = change_of_fetched(message_id, fetched.get(message_id), wanted=step.wanted)
                if change is not None:
                    changes.append(change)
        return changes


# ---- folding history records (pure)


@dataclass(slots=True)
class Step:
    action: str  # "fetch" | "removed" | "read"
    wanted: bool = False  # fetch: history showed it in INBOX/SENT (keep even if archived since)
    is_read: bool | None = None


def _entries(record: Mapping[str, Any], key: str) -> list[tuple[str, set[str] | None, set[str]]]:
    """(message id, its labels if given, the labels the entry added/removed)."""
    found = []
    for entry in record.get(key) or []:
        if not isinstance(entry, Mapping):
            continue
        message = entry.get("message")
        if not isinstance(message, Mapping) or not isinstance(message.get("id"), str) or not message["id"]:
            continue
        labels = mapping.labels_of(message) if isinstance(message.get("labelIds"), list) else None
        changed = {label for label in entry.get("labelIds") or [] if isinstance(label, str)}
        found.append((message["id"], labels, changed))
    return found


def fold_history(records: Sequence[Mapping[str, Any]]) -> dict[str, Step]:
    """One step per message for a page of history records, applied in order."""
    plan: dict[str, Step] = {}
    synced = set(SYNCED_LABELS)
    for record in records:
        for mid, labels, _ in _entries(record, "messagesAdded"):
            if labels is not None and (DRAFT in labels or not labels & synced):
                continue  # drafts autosave constantly; other labels are not synced
            plan[mid] = Step("fetch", wanted=labels is not None)
        for mid, labels, _ in _entries(record, "messagesDeleted"):
            if labels is not None and DRAFT in labels and mid not in plan:
                continue
            plan[mid] = Step("removed")
        for mid, labels, added in _entries(record, "labelsAdded"):
            if labels is not None and DRAFT in labels:
                continue
            if added & {TRASH, SPAM}:
                plan[mid] = Step("removed")
            elif added & synced:
                plan[mid] = Step("fetch", wanted=True)
            elif UNREAD in added:
                _read(plan, mid, False)
        for mid, labels, removed in _entries(record, "labelsRemoved"):
            if labels is not None and DRAFT in labels:
                continue
            if removed & {TRASH, SPAM}:
                plan[mid] = Step("fetch", wanted=False)  # restored: is it in a synced folder?
            elif UNREAD in removed:
                _read(plan, mid, True)
    return plan


def _read(plan: dict[str, Step], mid: str, is_read: bool) -> None:
    step = plan.get(mid)
    if step is not None and step.action in ("fetch", "removed"):
        return  # a fetch reads the current state; a removed message stays removed
    plan[mid] = Step("read", is_read=is_read)


def change_of_fetched(message_id: str, item: Mapping[str, Any] | None, *, wanted: bool) -> MailChange | None:
    if item is None:
        return MailChange(kind=ChangeKind.REMOVED, provider_id=message_id)
    labels = mapping.labels_of(item)
    if DRAFT in labels:
        return None
    if labels & {TRASH, SPAM}:
        return MailChange(kind=ChangeKind.REMOVED, provider_id=message_id)
    if not labels & set(SYNCED_LABELS) and not wanted:
        return None
    return MailChange(kind=ChangeKind.UPSERT, provider_id=message_id, message=mapping.message_of(item))
