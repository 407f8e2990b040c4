"""A short-lived cache of whole query results, invalidated by the event bus.

The inbox is read far more often than it changes, and executing a 50-thread page
through GraphQL costs far more than the SQL behind it. Results are cached per
sub-account for documents whose every root field shows the same thing to every
member of the sub-account (``threads``, ``thread``, ``contacts``): nothing that
depends on who the caller is (``viewer``, ``emailConnection``, ``syncSkips``, ``node``
with its role checks) is ever served from here.

Freshness: each sub-account's entries are dropped on any event of its channel (the
sync engine publishes one for every change, from any process when Redis is used),
and by the API's own mutations. A result computed while an event arrived is not
stored (generation check). A small TTL bounds what an unannounced change could
leave behind.

Single flight: requests that miss on a key being computed right now wait for that one
execution and share its result, instead of all executing the same page at once (when
the TTL ends under load, or after an event). A waiter whose leader stored nothing (an
error, an event meanwhile) executes on its own, without waiting again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from api.dependencies import ApiDependencies
from sync_engine.events import subaccount_channel

log = logging.getLogger(__name__)

SHARED_ROOT_FIELDS = frozenset({"threads", "thread", "contacts", "__typename"})
# Types whose visibility or content depends on who asks (owner, role, the caller's own
# mailbox): none may be reachable from a shared root field, or one member's answer would
# be served to another. tests/unit/api/test_response_cache_schema.py walks the schema.
VIEWER_DEPENDENT_TYPES = frozenset({
    "Viewer", "EmailConnection", "SyncSkip", "ApiKey", "BulkSend", "BulkDelivery", "SenderDomainRules",
    "SenderResolution", "SubAccountEmailProvider",
})
TTL_SECONDS = 2.0
MAX_ENTRIES_PER_SUB_ACCOUNT = 256
MAX_SUB_ACCOUNTS = 2000


@dataclass(slots=True)
class _Entry:
    expires: float
    result: Any
    # The encoded HTTP body, once the view has produced it: hits then skip GraphQL entirely.
    body: bytes | None = None


@dataclass
class _SubAccountEntries:
    generation: int = 0
    listening: bool = False
    entries: dict[Any, _Entry] = field(default_factory=dict)


def cache_key(query: str | None, operation_name: str | None, variables: Any) -> tuple[Any, ...]:
    """The same key from the raw request (view) and from the execution context (extension)."""
    return (query, operation_name, json.dumps(variables, sort_keys=True, separators=(",", ":"), default=str))


class ResponseCache:
    """Entries per sub-account, each sub-account with a listener on its event channel.
    At most ``MAX_SUB_ACCOUNTS`` are kept: the least recently used one is evicted with
    its listener (which unsubscribes its channel), so idle tenants cost nothing."""

    def __init__(self, rt: ApiDependencies) -> None:
        self._rt = rt
        self._subs: OrderedDict[uuid.UUID, _SubAccountEntries] = OrderedDict()
        self._listeners: dict[uuid.UUID, asyncio.Task[None]] = {}
        # (sub-account, key) -> set when the execution computing it ends, stored or not.
        self._flights: dict[tuple[uuid.UUID, Any], asyncio.Event] = {}

    def _state(self, sub_account_id: uuid.UUID) -> _SubAccountEntries:
        state = self._subs.get(sub_account_id)
        if state is not None:
            self._subs.move_to_end(sub_account_id)
            return state
        while len(self._subs) >= MAX_SUB_ACCOUNTS:
            self._evict(next(iter(self._subs)))
        state = self._subs[sub_account_id] = _SubAccountEntries()
        self._listeners[sub_account_id] = asyncio.create_task(self._listen(sub_account_id, state))
        return state

    def _evict(self, sub_account_id: uuid.UUID) -> None:
        state = self._subs.pop(sub_account_id, None)
        if state is not None:
            state.listening = False
            state.entries.clear()
        task = self._listeners.pop(sub_account_id, None)
        if task is not None:
            task.cancel()

    def listening(self) -> set[uuid.UUID]:
        """Sub-accounts whose event-channel listener is running (at most ``MAX_SUB_ACCOUNTS``)."""
        return {sub_id for sub_id, task in self._listeners.items() if not task.done()}

    async def _listen(self, sub_account_id: uuid.UUID, state: _SubAccountEntries) -> None:
        try:
            async with self._rt.events.subscribe(subaccount_channel(sub_account_id)) as events:
                state.listening = True
                async for _event in events:
                    self.invalidate(sub_account_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken listener must not leave stale entries behind
            log.exception("response cache listener for %s failed", sub_account_id)
        finally:
            state.listening = False
            state.entries.clear()
            if self._subs.get(sub_account_id) is state:
                self._subs.pop(sub_account_id, None)
                self._listeners.pop(sub_account_id, None)

    def generation(self, sub_account_id: uuid.UUID) -> int:
        return self._state(sub_account_id).generation

    def _entry(self, sub_account_id: uuid.UUID, key: Any) -> _Entry | None:
        state = self._subs.get(sub_account_id)
        if state is None:
            return None
        entry = state.entries.get(key)
        if entry is not None and entry.expires < time.monotonic():
            state.entries.pop(key, None)
            return None
        return entry

    def get_body(self, sub_account_id: uuid.UUID, key: Any) -> bytes | None:
        entry = self._entry(sub_account_id, key)
        return entry.body if entry is not None else None

    def attach_body(self, sub_account_id: uuid.UUID, key: Any, data: Any, body: bytes) -> None:
        """Remember the encoded body of a cached result (only if ``data`` *is* that result's data)."""
        entry = self._entry(sub_account_id, key)
        if entry is not None and entry.result.data is data:
            entry.body = body

    def cached_result(self, sub_account_id: uuid.UUID, key: Any) -> Any | None:
        entry = self._entry(sub_account_id, key)
        return entry.result if entry is not None else None

    async def after_flight(self, sub_account_id: uuid.UUID, key: Any) -> Any | None:
        """The cached result for ``key``, once the execution computing it now (if any) has
        ended; None when there is none (this request then executes)."""
        flight = self._flights.get((sub_account_id, key))
        if flight is not None:
            await flight.wait()
        return self.cached_result(sub_account_id, key)

    def take_off(self, sub_account_id: uuid.UUID, key: Any) -> asyncio.Event | None:
        """Mark ``key`` as being computed by the caller, who must ``land`` it when done (in
        all cases). None when another execution holds it already (this one runs alongside)."""
        if (sub_account_id, key) in self._flights:
            return None
        flight = self._flights[(sub_account_id, key)] = asyncio.Event()
        return flight

    def land(self, sub_account_id: uuid.UUID, key: Any, flight: asyncio.Event | None) -> None:
        if flight is not None:
            self._flights.pop((sub_account_id, key), None)
            flight.set()

    def put(self, sub_account_id: uuid.UUID, key: Any, value: Any, generation: int) -> None:
        state = self._subs.get(sub_account_id)
        # Only while the invalidation listener is live, and nothing changed meanwhile.
        if state is None or not state.listening or state.generation != generation:
            return
        if len(state.entries) >= MAX_ENTRIES_PER_SUB_ACCOUNT:
            state.entries.clear()
        state.entries[key] = _Entry(expires=time.monotonic() + TTL_SECONDS, result=value)

    def invalidate(self, sub_account_id: uuid.UUID | None) -> None:
        state = self._subs.get(sub_account_id) if sub_account_id is not None else None
        if state is not None:
            state.generation += 1
            state.entries.clear()

    async def close(self) -> None:
        tasks = list(self._listeners.values())
        for sub_account_id in list(self._subs):
            self._evict(sub_account_id)
        await asyncio.gather(*tasks, return_exceptions=True)


def _root_field_names(selection_set: SelectionSetNode, fragments: dict[str, Any], seen: set[str]) -> Iterator[str]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_field_names(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:
                yield "?"  # unknown: not cacheable
                continue
            seen.add(name)
            yield from _root_field_names(fragment.selection_set, fragments, seen)


def is_shared_read(document: DocumentNode, operation_name: str | None) -> bool:
    """True when the operation is a query touching only viewer-independent root fields."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name is not None and op.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
        return False
    fragments = {d.name.value: d for d in document.definitions if hasattr(d, "type_condition")}
    names = set(_root_field_names(operations[0].selection_set, fragments, set()))
    return bool(names) and names <= SHARED_ROOT_FIELDS


class CachedSharedReads(SchemaExtension):
    """Decides what is cacheable and fills the ``ResponseCache`` after execution; the HTTP
    view is the one place that serves from it (the encoded body, before any parsing)."""

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        context = ec.context
        cache: ResponseCache | None = getattr(context, "response_cache", None)
        viewer = getattr(context, "viewer", None)
        key = None
        if (
            cache is not None
            and viewer is not None
            and viewer.sub_account_id is not None
            and ec.graphql_document is not None
            and not ec.pre_execution_errors
            and is_shared_read(ec.graphql_document, ec.operation_name)
        ):
            # The operation name as the client sent it (the view keys on the raw request).
            key = cache_key(ec.query, getattr(ec, "_provided_operation_name", None), ec.variables)
        if cache is None or key is None:
            yield
            return
        sub_account_id = viewer.sub_account_id
        shared = await cache.after_flight(sub_account_id, key)
        if shared is not None:
            ec.result = shared  # Strawberry executes nothing when an extension set the result
            yield
            return
        generation = cache.generation(sub_account_id)  # also starts the invalidation listener
        flight = cache.take_off(sub_account_id, key)
        try:
            yield
            result = ec.result
            if result is not None and not getattr(result, "errors", None):
                cache.put(sub_account_id, key, result, generation)
        finally:
            cache.land(sub_account_id, key, flight)
