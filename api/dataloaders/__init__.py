"""Per-request batch loaders, one per file, all bound to the viewer's sub-account.

A loader answers ``None`` for ids of other sub-accounts, exactly as for unknown ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from api.dataloaders.attachments_by_message import load_attachments_by_message
from api.dataloaders.connection_by_id import load_connections
from api.dataloaders.contact_by_id import load_contacts
from api.dataloaders.message_body_by_id import load_message_bodies
from api.dataloaders.message_by_id import load_messages
from api.dataloaders.skip_count_by_connection import load_skip_counts
from api.dataloaders.thread_by_id import load_threads
from api.dataloaders.user_by_id import load_users
from api.dependencies import ApiDependencies

KeyT = TypeVar("KeyT")
T = TypeVar("T")


class Loaders:
    """Created lazily per request (HTTP) or per delivered event (subscriptions); with
    ``cache=False`` a long-lived WebSocket context never serves stale rows."""

    def __init__(self, rt: ApiDependencies, sub_account_id: uuid.UUID, *, cache: bool = True) -> None:
        self._rt = rt
        self._sub_account_id = sub_account_id
        self._cache = cache

    def _make(self, fn: Any) -> DataLoader[Any, Any]:
        rt, sub_account_id = self._rt, self._sub_account_id

        async def load(keys: list[Any]) -> list[Any]:
            return await fn(rt, sub_account_id, keys)

        return DataLoader(load_fn=load, cache=self._cache)

    @cached_property
    def thread(self) -> DataLoader[uuid.UUID, Any]:
        return self._make(load_threads)

    @cached_property
    def message(self) -> DataLoader[uuid.UUID, Any]:
        return self._make(load_messages)

    @cached_property
    def message_body(self) -> DataLoader[uuid.UUID, Any]:
        return self._make(load_message_bodies)

    @cached_property
    def attachments(self) -> DataLoader[uuid.UUID, list[Any]]:
        return self._make(load_attachments_by_message)

    @cached_property
    def contact(self) -> DataLoader[uuid.UUID, Any]:
        return self._make(load_contacts)

    @cached_property
    def user(self) -> DataLoader[uuid.UUID, Any]:
        return self._make(load_users)

    @cached_property
    def connection(self) -> DataLoader[uuid.UUID, Any]:
        return self._make(load_connections)

    @cached_property
    def skip_count(self) -> DataLoader[uuid.UUID, int]:
        return self._make(load_skip_counts)


async def load_as(loader: DataLoader[KeyT, Any], key: KeyT | None, build: Callable[[Any], T]) -> T | None:
    """``build(row)`` for the row ``loader`` finds under ``key``; None without a key or a row."""
    if key is None:
        return None
    row = await loader.load(key)
    return build(row) if row is not None else None
