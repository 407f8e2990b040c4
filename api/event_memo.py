"""What one live event shows, loaded once per sub-account for all its subscribers.

An event fans out to every subscriber of its channel in the process (a thousand, on a
busy API process). Each subscriber runs its own GraphQL execution, but the event's
thread, message and connection rows are the same for all of them: rows are scoped to
the sub-account, never to the viewer (role checks, like ``SyncEvent.email_connection``'s,
happen per viewer on top of the row). So the subscribers of one event in one
sub-account share one ``EventScope``: one query per object instead of one per
subscriber, and one object built from each row.

Tenancy: a scope is keyed by the sub-account and loads through the same sub-account
scoped repository calls as the loaders, so a scope never holds another tenant's row,
and a subscriber only ever gets the scope of its own sub-account.

Freshness: a scope shows the state as of its first load. Every later change publishes
a new event (a new key, a new scope); a scope also expires ``TTL_SECONDS`` after it was
made, so a subscriber far behind loads afresh instead of from an old scope.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from api.dependencies import ApiDependencies

T = TypeVar("T")
Fetch = Callable[[ApiDependencies, uuid.UUID, list[uuid.UUID]], Awaitable[list[Any]]]

TTL_SECONDS = 5.0
MAX_SCOPES = 1024


class EventScope:
    def __init__(self, rt: ApiDependencies, sub_account_id: uuid.UUID, expires: float) -> None:
        self.sub_account_id = sub_account_id
        self.expires = expires
        self._rt = rt
        self._loads: dict[tuple[Any, uuid.UUID], asyncio.Future[Any]] = {}
        # Per-scope values computed from the event alone (e.g. its ``SyncEvent``).
        self.memo: dict[Hashable, Any] = {}

    async def load_as(self, fetch: Fetch, key: uuid.UUID | None, build: Callable[[Any], T]) -> T | None:
        """``build(row)`` for the row ``fetch`` finds under ``key`` in this sub-account,
        fetched and built once for every subscriber of the event; None without a row."""
        if key is None:
            return None
        memo_key = (fetch, key)
        task = self._loads.get(memo_key)
        if task is None:
            task = self._loads[memo_key] = asyncio.ensure_future(self._load(fetch, key, build))
            task.add_done_callback(lambda t: self._forget_failed(memo_key, t))
        # Shielded: a subscriber that goes away mid-load must not cancel the load the
        # others of this event are waiting for.
        return await asyncio.shield(task)

    async def _load(self, fetch: Fetch, key: uuid.UUID, build: Callable[[Any], T]) -> T | None:
        rows = await fetch(self._rt, self.sub_account_id, [key])
        return build(rows[0]) if rows and rows[0] is not None else None

    def _forget_failed(self, memo_key: tuple[Any, uuid.UUID], task: asyncio.Future[Any]) -> None:
        # A failed load (database hiccup) is not kept: the next subscriber tries again.
        if task.cancelled() or task.exception() is not None:
            self._loads.pop(memo_key, None)


class EventScopes:
    """The live scopes of one process, by (runtime, sub-account, event key). Small and
    short-lived: a scope matters only while its event is being delivered."""

    def __init__(self, ttl: float = TTL_SECONDS, max_scopes: int = MAX_SCOPES) -> None:
        self._ttl = ttl
        self._max = max_scopes
        self._scopes: OrderedDict[tuple[int, uuid.UUID, Hashable], EventScope] = OrderedDict()

    def get(self, rt: ApiDependencies, sub_account_id: uuid.UUID, event_key: Hashable) -> EventScope:
        now = time.monotonic()
        # id(rt) cannot be reused while a scope holds ``rt``; it only separates test
        # runtimes sharing a process.
        key = (id(rt), sub_account_id, event_key)
        scope = self._scopes.get(key)
        if scope is not None and scope.expires > now:
            return scope
        self._prune(now)
        scope = self._scopes[key] = EventScope(rt, sub_account_id, now + self._ttl)
        self._scopes.move_to_end(key)
        return scope

    def _prune(self, now: float) -> None:
        # Insertion order is expiry order (one TTL for all): expired scopes are at the front.
        while self._scopes:
            oldest = next(iter(self._scopes.values()))
            if oldest.expires > now and len(self._scopes) < self._max:
                return
            self._scopes.popitem(last=False)

    def __len__(self) -> int:
        return len(self._scopes)


event_scopes = EventScopes()
