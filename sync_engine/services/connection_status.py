"""A connection's status, changed and announced (connected, syncing, error, reauth_required ...)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from db.models import EmailConnection
from db.repositories import connections as repo
from sync_engine.events import DomainEvent, record_events
from sync_engine.services.collaborators import EventPublisher, SessionFactory
from vocabulary import EventType


def connection_event(conn: EmailConnection) -> DomainEvent:
    return DomainEvent(type=EventType.CONNECTION_CHANGED, sub_account_id=str(conn.sub_account_id),
                       connection_id=str(conn.id), user_id=str(conn.user_id), status=conn.status)


@dataclass(frozen=True)
class ConnectionStatuses:
    sessions: SessionFactory
    events: EventPublisher

    async def set(self, connection_id: uuid.UUID, status: str, detail: str | None = None, *,
                  error: str | None = None) -> None:
        """Change the status of a current connection and announce it; a disconnected mailbox, or
        one that must be connected again, keeps its status (see ``repo.change_status``)."""
        async with self.sessions.begin() as session:
            conn = await repo.change_status(session, connection_id, status, detail, error=error)
            events = [connection_event(conn)] if conn is not None else []
            await record_events(session, events)
        await self.events.publish_all(events)

    async def announce(self, conn: EmailConnection) -> None:
        """Announce ``conn`` as it is now, where no single change carries the news (a pass
        that finished): logged in a transaction of its own, then relayed."""
        events = [connection_event(conn)]
        async with self.sessions.begin() as session:
            await record_events(session, events)
        await self.events.publish_all(events)
