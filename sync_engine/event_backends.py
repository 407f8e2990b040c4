"""A broadcaster backend for Redis pub/sub that survives Redis going away.

broadcaster 0.3.1's own Redis backend reads in a task that dies on the first connection
error: after a Redis restart publishing works again but subscribers silently receive
nothing more (DESIGN.md section 6). This one implements broadcaster's public
``BroadcastBackend`` interface on redis-py's public pub/sub API, and its reader
survives: on a connection error it waits (with capped backoff), reconnects and
resubscribes to every channel that still has listeners, then tells each of those
channels ``BUS_RESUMED``. What was published meanwhile is not lost: it is in the event
log, and the channel's readers fill the gap from there on that marker.

Subscribing never fails while Redis is away (the channel is subscribed on reconnect),
so a subscription started during an outage simply starts receiving when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from broadcaster import BroadcastBackend, Event
from redis import asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sync_engine import metrics
from sync_engine.events import DomainEvent

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0
CONNECT_TIMEOUT = 5.0
# A half-open connection (Redis host gone silent) is noticed by a PING this often.
HEALTH_CHECK_SECONDS = 10
_LOST = (RedisConnectionError, RedisTimeoutError, OSError)


class ResilientRedisBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        # Fail fast on a silent host instead of the OS connect timeout (minutes).
        self._conn = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT,
                                          health_check_interval=HEALTH_CHECK_SECONDS)
        self._pubsub: Any = None
        self._channels: set[str] = set()
        self._received: asyncio.Queue[Event] = asyncio.Queue()
        self._has_channels = asyncio.Event()
        # One pub/sub mutation at a time: redis-py's PubSub opens its connection lazily, and
        # concurrent first subscribes would each open one (all but the last left unread).
        self._mutating = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self.reconnects = 0  # observable in tests and metrics

    async def connect(self) -> None:
        self._pubsub = self._conn.pubsub()
        self._reader = asyncio.create_task(self._read_forever(), name="event-bus-reader")

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await _quietly_close(self._pubsub)
        await self._conn.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        self._has_channels.set()
        try:
            async with self._mutating:
                await self._pubsub.subscribe(channel)
        except _LOST:
            pass  # the reader resubscribes every channel once Redis is back
        except asyncio.CancelledError:
            self._channels.discard(channel)  # nobody will listen on it
            raise

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        try:
            async with self._mutating:
                await self._pubsub.unsubscribe(channel)
        except _LOST:
            pass  # the connection is gone, and the channel with it

    async def publish(self, channel: str, message: Any) -> None:
        await self._conn.publish(channel, message)

    async def next_published(self) -> Event:
        return await self._received.get()

    async def _read_forever(self) -> None:
        while True:
            if not self._channels:
                self._has_channels.clear()
                await self._has_channels.wait()
            try:
                if not self._pubsub.subscribed:
                    # Subscribed to nothing (all channels left, or a subscribe raced the
                    # last unsubscribe): make sure the live set is subscribed.
                    async with self._mutating:
                        if self._channels:
                            await self._pubsub.subscribe(*sorted(self._channels))
                    continue
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost, or an answer we cannot read: start a clean connection
                log.warning("event bus lost Redis (%s); reconnecting", type(exc).__name__)
                await self._reconnect()
                continue
            if message is not None and message["type"] == "message":
                await self._received.put(Event(channel=_text(message["channel"]), message=_text(message["data"])))

    async def _reconnect(self) -> None:
        """A fresh pub/sub connection subscribed to every live channel; retries until Redis is back."""
        backoff = 0.1
        while True:
            async with self._mutating:
                await _quietly_close(self._pubsub)
                self._pubsub = self._conn.pubsub()
                channels = sorted(self._channels)
                try:
                    if channels:
                        await self._pubsub.subscribe(*channels)
                    failed = False
                except Exception:  # still away (or answering nonsense): try again shortly
                    failed = True
            if failed:
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            self.reconnects += 1
            metrics.BUS_RECONNECTS.inc()
            log.info("event bus back on Redis, resubscribed to %d channels", len(channels))
            marker = DomainEvent.bus_resumed().to_json()
            for channel in channels:
                await self._received.put(Event(channel=channel, message=marker))
            return


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _quietly_close(pubsub: Any) -> None:
    if pubsub is None:
        return
    try:
        await pubsub.aclose()
    except Exception:  # the old connection is already broken; nothing to release
        pass
