"""What the API edge needs from the process, handed over by the composition root
(``emailsync.runtime.Runtime`` is one; tests may pass their own)."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from sync_engine.event_feed import EventFeeds
from sync_engine.events import EventBus
from sync_engine.services.collaborators import SessionFactory
from sync_engine.services.facades import Services
from sync_engine.settings import Settings


class ApiDependencies(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> AsyncEngine:
        """The read path's Core queries (db/repositories) run on it."""
        ...

    @property
    def sessions(self) -> SessionFactory: ...

    @property
    def services(self) -> Services: ...

    @property
    def events(self) -> EventBus: ...

    @property
    def feeds(self) -> EventFeeds: ...
