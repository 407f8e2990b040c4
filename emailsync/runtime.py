"""The process-wide objects, built once at start-up: the composition root.

API processes and workers both open a ``Runtime``: settings, database engine and
sessions, the secret box, the provider adapters, the event bus and feeds, the job
seam and its backend (inline without Redis, arq with it), and the services wired
from them (``emailsync.wiring``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from broadcaster import Broadcast
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.base import utcnow
from db.engine import create_engine, create_sessionmaker
from emailsync.wiring import Collaborators, build_services
from sync_engine.crypto import SecretBox
from sync_engine.domain import Provider
from sync_engine.event_backends import ResilientRedisBackend
from sync_engine.event_feed import EventFeeds
from sync_engine.events import BroadcastEventBus, EventBus
from sync_engine.job_queue import PERIODIC, JobBackend, Jobs
from sync_engine.providers.base import MailProvider
from sync_engine.providers.registry import build_providers
from sync_engine.services.collaborators import Clock
from sync_engine.services.facades import Services
from sync_engine.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    secrets: SecretBox
    providers: dict[Provider, MailProvider]
    events: EventBus
    jobs: Jobs
    broadcast: Broadcast | None = None
    clock: Clock = utcnow
    # A name for this process, used as the owner of mailbox sync leases.
    instance: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")
    # Ordered, gap-free event streams for this process's subscribers (sync_engine.event_feed).
    feeds: EventFeeds = field(init=False)
    services: Services = field(init=False)

    def __post_init__(self) -> None:
        self.feeds = EventFeeds(self.events, self.engine, self.settings.event_poll_seconds)
        self.services = build_services(Collaborators(
            settings=self.settings, engine=self.engine, sessions=self.sessions, secrets=self.secrets,
            providers=self.providers, events=self.events, jobs=self.jobs, clock=self.clock, instance=self.instance))


def _apply_ca_bundle(settings: Settings) -> None:
    # msal/requests read these; they override any verify= argument (DESIGN.md section 6).
    if settings.ca_bundle:
        os.environ.setdefault("REQUESTS_CA_BUNDLE", settings.ca_bundle)
        os.environ.setdefault("CURL_CA_BUNDLE", settings.ca_bundle)


@asynccontextmanager
async def open_runtime(settings: Settings, *, backend: JobBackend | None = None) -> AsyncIterator[Runtime]:
    """Open everything; ``backend`` overrides the default job backend (inline without Redis,
    arq with it); the caller closes a backend it passed."""
    _apply_ca_bundle(settings)
    # Closed in reverse order (feeds, job backend, bus, engine), also when start-up fails half-way.
    async with AsyncExitStack() as owned:
        engine = create_engine(settings.database_url)
        owned.push_async_callback(engine.dispose)
        if settings.redis_url:
            broadcast = Broadcast(backend=ResilientRedisBackend(settings.redis_url))
        else:
            broadcast = Broadcast("memory://")
        await broadcast.connect()
        owned.push_async_callback(broadcast.disconnect)
        inline = None
        if backend is None:
            if settings.redis_url:
                from sync_engine.arq_queue import ArqQueue

                backend = await ArqQueue.connect(settings.redis_url, settings.queue_name)
            else:
                from sync_engine.inline_queue import InlineQueue
                from sync_engine.jobs import JOBS

                backend = inline = InlineQueue(JOBS, {})
            owned.push_async_callback(backend.close)
        rt = Runtime(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            secrets=SecretBox.from_setting(settings.encryption_keys.get_secret_value()),
            providers=build_providers(settings),
            events=BroadcastEventBus(broadcast),
            jobs=Jobs(backend),
            broadcast=broadcast,
        )
        owned.push_async_callback(rt.feeds.close)
        if inline is not None:
            inline.ctx.update(job_context(rt))
            inline.start_periodic(PERIODIC)
        yield rt


def job_context(rt: Runtime) -> dict[str, object]:
    """What a job function finds in its ``ctx`` (sync_engine.jobs)."""
    return {"services": rt.services, "jobs": rt.jobs}
