"""Domain events (``events.type``): what happened, as the event log and live subscribers see it."""

from __future__ import annotations

import enum


class EventType(enum.StrEnum):
    MESSAGE_ADDED = "message_added"
    MESSAGE_UPDATED = "message_updated"
    THREAD_CREATED = "thread_created"
    CONNECTION_CHANGED = "connection_changed"
    # A bulk send's counters moved (a delivery finished) or it completed. Relayed only,
    # never logged: its subscription starts from a snapshot of the bulk send's row.
    BULK_SEND_PROGRESS = "bulk_send_progress"
    # Told to a client whose cursor is older than the log's retention (or unknown): what
    # it missed cannot be replayed, so it refetches. Never stored.
    EVENTS_MISSED = "events_missed"
    # Not an event: the bus was away and is back; readers of the channel check the log for
    # what was published meanwhile. Never stored, never shown to clients.
    BUS_RESUMED = "bus_resumed"
