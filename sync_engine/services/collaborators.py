"""The collaborators services are built with, as types.

A service is a small class whose constructor takes exactly what it uses (a session
factory, the job seam, an event publisher, the provider registry, a clock, ...). The
composition root (``emailsync.wiring``) builds them once per process; tests build them
with fakes through the same constructors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sync_engine.domain import Provider
from sync_engine.events import DomainEvent
from sync_engine.providers.base import MailProvider

SessionFactory = async_sessionmaker[AsyncSession]
ProviderRegistry = Mapping[Provider, MailProvider]
# Now, as an aware UTC datetime (db.base.utcnow in production).
Clock = Callable[[], datetime]


class EventPublisher(Protocol):
    """Relays events that are already in the event log (``sync_engine.events.record_events``)."""

    async def publish(self, event: DomainEvent) -> None: ...

    async def publish_all(self, events: Iterable[DomainEvent]) -> None: ...
