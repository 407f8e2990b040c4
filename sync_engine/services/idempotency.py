"""Idempotent send mutations: same key + same caller = same result, for 24 hours.

The key is recorded in the transaction that queues the send, before anything else is
written, so a concurrent duplicate waits on the unique index and then fails; the caller
retries the lookup and answers with the first request's result. A key reused with a
different request (another operation, other recipients or content) is refused rather
than silently answered with an unrelated result.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import IdempotencyKey
from db.repositories import idempotency_keys as repo
from db.repositories.writes import AlreadyExists
from sync_engine.rules.addresses import has_header_injection
from sync_engine.services.collaborators import Clock, SessionFactory
from sync_engine.services.errors import ServiceError

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_CHARS = 200

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IdempotentCall:
    sub_account_id: uuid.UUID
    caller: str  # "user:<id>" or "api_key:<id>": keys of different callers never collide
    key: str
    operation: str
    fingerprint: str


def fingerprint(payload: Any) -> str:
    """A stable hash of the request (JSON of plain values, sorted keys)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_CHARS or has_header_injection(key) or not key.isprintable():
        raise ServiceError("INVALID_IDEMPOTENCY_KEY",
                           f"the idempotency key must be 1 to {MAX_KEY_CHARS} printable characters", "idempotencyKey")


@dataclass(frozen=True)
class IdempotencyService:
    sessions: SessionFactory
    clock: Clock

    async def earlier_result(self, session: AsyncSession, call: IdempotentCall) -> uuid.UUID | None:
        """The result id of an earlier request with this key, or None (expired keys are freed)."""
        now = self.clock()
        row = await repo.find(session, call.sub_account_id, call.caller, call.key, now)
        if row is None:
            await repo.drop_expired(session, call.sub_account_id, call.caller, call.key, now)
            return None
        if row.operation != call.operation or row.request_hash != call.fingerprint:
            raise ServiceError("IDEMPOTENCY_KEY_REUSED",
                               "this idempotency key was used for a different request in the last 24 hours",
                               "idempotencyKey")
        return row.result_id

    async def remember(self, session: AsyncSession, call: IdempotentCall, result_id: uuid.UUID) -> None:
        """Record the key first in the send's transaction (see the module docstring); a
        concurrent duplicate raises ``AlreadyExists`` here, which ``run_once`` answers."""
        await repo.add(session, IdempotencyKey(
            sub_account_id=call.sub_account_id, caller=call.caller, key=call.key, operation=call.operation,
            request_hash=call.fingerprint, result_id=result_id, expires_at=self.clock() + KEY_LIFETIME))

    async def purge_expired(self) -> int:
        async with self.sessions.begin() as session:
            return await repo.purge_expired(session, self.clock())

    async def _earlier(self, call: IdempotentCall) -> uuid.UUID | None:
        async with self.sessions.begin() as session:
            return await self.earlier_result(session, call)

    async def run_once(self, call: IdempotentCall | None, perform: Callable[[], Awaitable[T]],
                       replay: Callable[[uuid.UUID], Awaitable[T]]) -> T:
        """``perform`` unless an earlier request with the key has a result, which ``replay``
        answers with; a duplicate that lost the race on the key is answered like a replay."""
        if call is None:
            return await perform()
        earlier = await self._earlier(call)
        if earlier is not None:
            return await replay(earlier)
        try:
            return await perform()
        except AlreadyExists:
            earlier = await self._earlier(call)
            if earlier is None:
                raise
            return await replay(earlier)
