"""broadcaster backends with the supervision broadcaster 0.3.1 lacks.

broadcaster's Redis backend reads pub/sub messages in a task that dies on the first
connection error: after a Redis restart, publishing works again but subscribers
silently receive nothing more (DESIGN.md section 6). Here the reader survives: on a
connection error it waits (with backoff), reconnects and resubscribes to every
channel that still has listeners, then goes on delivering. Whatever was published
while it was away is gone (Redis pub/sub keeps nothing), so each of those channels
first gets an ``EVENTS_MISSED`` event: subscribers refetch instead of silently
showing stale data.
"""

from __future__ import annotations

import asyncio
import logging

from broadcaster._backends.redis import RedisBackend
from redis import asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broadcaster import Event

from sync_engine.events import DomainEvent

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0
CONNECT_TIMEOUT = 5.0


class SupervisedRedisBackend(RedisBackend):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        # A silent Redis host (packets dropped, nothing refused) must not hold a publish for
        # the OS connect timeout (minutes): fail fast, the bus is best effort anyway.
        self._conn = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT)
        self._pubsub = self._conn.pubsub()
        self._channels: set[str] = set()
        self.reconnects = 0  # observable in tests and metrics

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        try:
            await super().subscribe(channel)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            # Refused while Redis is away: nobody listens on it, so the reconnect must not
            # resubscribe it. (broadcaster 0.3.1 then masks this error with a KeyError in its
            # own cleanup; the subscription fails either way.)
            self._channels.discard(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        await super().unsubscribe(channel)

    async def _pubsub_listener(self) -> None:
        while True:
            await self._ready.wait()
            try:
                async for message in self._pubsub.listen():
                    if message["type"] == "message":
                        await self._queue.put(Event(channel=message["channel"].decode(), message=message["data"].decode()))
                self._ready.clear()  # no channel left: wait for the next subscription
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("event bus lost Redis (%s); reconnecting", type(exc).__name__)
                await self._resubscribe()

    async def _resubscribe(self) -> None:
        """A fresh pub/sub connection subscribed to every live channel; retries until Redis is back."""
        backoff = 0.1
        while True:
            try:
                await self._pubsub.aclose()
            except Exception:  # the old connection is already broken
                pass
            self._pubsub = self._conn.pubsub()
            try:
                channels = sorted(self._channels)
                if channels:
                    await self._pubsub.subscribe(*channels)
                else:
                    self._ready.clear()
                self.reconnects += 1
                log.info("event bus resubscribed to %d channels", len(channels))
                missed = DomainEvent.events_missed().to_json()
                for channel in channels:
                    await self._queue.put(Event(channel=channel, message=missed))
                return
            except (RedisConnectionError, RedisTimeoutError, OSError):
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
