"""The process-wide objects a service or job needs, built once at start-up.

API processes and workers both open a ``Runtime``: settings, database sessions,
the secret box, the provider adapters, the event bus and the job queue.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from broadcaster import Broadcast
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import create_engine, create_sessionmaker
from sync_engine.crypto import SecretBox
from sync_engine.domain import Provider
from sync_engine.event_backends import ResilientRedisBackend
from sync_engine.event_feed import EventFeeds
from sync_engine.events import BroadcastEventBus, EventBus
from sync_engine.providers.base import MailProvider
from sync_engine.providers.registry import build_providers
from sync_engine.queue import JobQueue
from sync_engine.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    secrets: SecretBox
    providers: dict[Provider, MailProvider]
    events: EventBus
    queue: JobQueue = field(init=False)
    broadcast: Broadcast | None = None
    # Ordered, gap-free event streams for this process's subscribers (sync_engine.event_feed).
    feeds: EventFeeds = field(init=False)
    # A name for this process, used as the owner of mailbox sync leases.
    instance: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")

    def __post_init__(self) -> None:
        self.feeds = EventFeeds(self.events, self.engine, self.settings.event_poll_seconds)

    def provider(self, name: Provider | str) -> MailProvider:
        return self.providers[Provider(name)]


def _apply_ca_bundle(settings: Settings) -> None:
    # msal/requests read these; they override any verify= argument (DESIGN.md section 6).
    if settings.ca_bundle:
        os.environ.setdefault("REQUESTS_CA_BUNDLE", settings.ca_bundle)
        os.environ.setdefault("CURL_CA_BUNDLE", settings.ca_bundle)


@asynccontextmanager
async def open_runtime(settings: Settings, *, queue: JobQueue | None = None) -> AsyncIterator[Runtime]:
    """Open everything; ``queue`` overrides the default (inline without Redis, arq with it)."""
    _apply_ca_bundle(settings)
    engine = create_engine(settings.database_url)
    if settings.redis_url:
        broadcast = Broadcast(backend=ResilientRedisBackend(settings.redis_url))
    else:
        broadcast = Broadcast("memory://")
    await broadcast.connect()
    rt = Runtime(
        settings=settings,
        engine=engine,
        sessions=create_sessionmaker(engine),
        secrets=SecretBox.from_setting(settings.encryption_keys.get_secret_value()),
        providers=build_providers(settings),
        events=BroadcastEventBus(broadcast),
        broadcast=broadcast,
    )
    owned_queue = queue is None
    if queue is None:
        queue = await _default_queue(rt)
    rt.queue = queue
    try:
        yield rt
    finally:
        await rt.feeds.close()
        if owned_queue:
            await queue.close()
        await broadcast.disconnect()
        await engine.dispose()


async def _default_queue(rt: Runtime) -> Any:
    if rt.settings.redis_url:
        from sync_engine.arq_queue import ArqQueue

        return await ArqQueue.connect(rt.settings.redis_url, rt.settings.queue_name)
    from sync_engine.inline_queue import InlineQueue
    from sync_engine.jobs import JOBS, PERIODIC

    queue = InlineQueue(JOBS, {"runtime": rt})
    queue.start_periodic(PERIODIC)
    return queue
