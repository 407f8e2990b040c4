"""One execution per live event for every subscriber who would get the same answer.

A thousand subscribers of ``inboxEvents`` with the same document each ran their own
execution of the event's selection: the rows were shared (``api.event_memo``), but
building and completing ~the same result a thousand times cost ~0.9 ms of CPU per
subscriber and event. Subscribers now share the execution result when nothing that
differs between them can show in it:

- the same event in the same sub-account (the result is kept in the event's
  ``EventScope``, which only ever serves subscribers of that sub-account);
- the same parsed document (the document cache hands one ``DocumentNode`` to every
  request with the same text) and operation, and the same variable values;
- the same kind of caller and role: what a role may see (``SyncEvent.emailConnection``
  is for its owner and admins) is decided by them; and, when the document reaches a
  type whose content depends on who asks (``VIEWER_DEPENDENT_TYPES``: a connection,
  an API key...), the same user as well.

The first subscriber to reach the event executes; the others await that execution
(shielded: one leaving does not cancel it for the rest). An execution that failed is
shared too, as each would have failed alike.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Hashable
from typing import Any

from graphql import GraphQLSchema, TypeInfo, TypeInfoVisitor, Visitor, get_named_type, visit
from graphql.language import DocumentNode, FieldNode

from api.response_cache import VIEWER_DEPENDENT_TYPES
from sync_engine import metrics

_RESULTS = "execution results"


class _ViewerDependentFinder(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.found = False

    def enter_field(self, node: FieldNode, *_args: Any) -> Any:
        field_type = self.type_info.get_type()
        if field_type is not None and get_named_type(field_type).name in VIEWER_DEPENDENT_TYPES:
            self.found = True
            return Visitor.BREAK
        return None


def reaches_viewer_dependent_type(schema: GraphQLSchema, operation: Any, fragments: dict[str, Any]) -> bool:
    """Whether the operation (or any fragment of its document: a conservative reading)
    selects a field whose type depends on who asks."""
    document = DocumentNode(definitions=(operation, *fragments.values()))
    type_info = TypeInfo(schema)
    finder = _ViewerDependentFinder(type_info)
    visit(document, TypeInfoVisitor(type_info, finder))
    return finder.found


def subscription_share_key(schema: GraphQLSchema, operation: Any, fragments: dict[str, Any],
                           coerced_variables: dict[str, Any], viewer: Any) -> Hashable | None:
    """What a subscriber's answers to an event depend on besides the event; None when it
    cannot be told (no viewer, variables that do not encode): that subscriber executes alone."""
    if viewer is None or getattr(viewer, "sub_account_id", None) is None:
        return None
    try:
        variables = json.dumps(coerced_variables, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    user = viewer.user_id if reaches_viewer_dependent_type(schema, operation, fragments) else None
    # id(operation): the memo entry holds the operation itself, so the id is not reused
    # while the entry lives.
    return (id(operation), variables, viewer.sub_account_id, viewer.kind, viewer.role, user)


def shared_execution(memo: dict[Hashable, Any], key: Hashable, operation: Any, execute: Callable[[], Any]) -> Any:
    """The result of ``execute()`` for this event and ``key``, executed by the first
    subscriber to ask and awaited by the others."""
    results: dict[Hashable, tuple[Any, asyncio.Future[Any]]] = memo.setdefault(_RESULTS, {})
    entry = results.get(key)
    if entry is None:
        metrics.SUBSCRIPTION_EXECUTIONS.inc()
        outcome = execute()
        if not inspect.isawaitable(outcome):
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(outcome)
            results[key] = (operation, done)
            return outcome
        entry = results[key] = (operation, asyncio.ensure_future(outcome))
    return _shielded(entry[1])


async def _shielded(task: asyncio.Future[Any]) -> Any:
    return await asyncio.shield(task)
