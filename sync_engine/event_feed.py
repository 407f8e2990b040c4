"""Each sub-account's events, in order and without gaps, for this process's readers.

One ``SubAccountFeed`` per sub-account with readers in the process: it listens on the
sub-account's bus channel and hands each event, in ``seq`` order, to its listeners
(subscriptions, each with a filter). The bus is only the fast path: whenever the feed
sees a hole (an event numbered beyond the next one), the bus comes back after an outage
(``BUS_RESUMED``), or the periodic poll finds the log ahead of it (a relay lost to a
crash right after a commit), it reads the missing events from the log first.

A listener starts from a cursor: it replays the log from there up to the feed's head
at the moment it registered, then takes live events, which are exactly those after
that head, so nothing is missed or repeated. A listener too slow to keep up (its queue
full) drops its queue and replays the same range from the log instead.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from db.repositories import events as event_log
from sync_engine import metrics
from sync_engine.events import DomainEvent, subaccount_channel
from vocabulary import EventType

log = logging.getLogger(__name__)

REPLAY_PAGE = 500
MAX_QUEUED = 10_000
_CATCH_UP = DomainEvent(type="catch_up", sub_account_id="")  # internal: "read the log now"
_OVERFLOW = DomainEvent(type="overflow", sub_account_id="")  # internal: "your queue was dropped"
_CLOSED = DomainEvent(type="closed", sub_account_id="")  # internal: "the process is shutting down"
# Replays of resuming listeners read the log at most this many at a time: a thousand
# clients reconnecting after an API restart must not take every pooled connection.
MAX_CONCURRENT_REPLAYS = 4
_RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)


@dataclass(eq=False)
class _Listener:
    accept: Callable[[DomainEvent], bool]
    queue: asyncio.Queue[DomainEvent] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def offer(self, event: DomainEvent) -> None:
        if self.overflowed or not self.accept(event):
            return
        if self.queue.qsize() >= MAX_QUEUED:
            # It replays from the log instead: free what it held, and say so in its place.
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_OVERFLOW)
            return
        self.queue.put_nowait(event)


class SubAccountFeed:
    def __init__(self, feeds: EventFeeds, sub_account_id: uuid.UUID) -> None:
        self._feeds = feeds
        self.sub_account_id = sub_account_id
        self.head = 0  # the last seq handed to listeners
        self.ready = asyncio.Event()
        self.refs = 0
        self.listeners: set[_Listener] = set()
        self._inbox: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._catch_up_queued = False
        self._failures = 0
        self.closed = False  # released: its task must end, whatever it was doing
        self.task = asyncio.create_task(self._run(), name=f"event-feed-{sub_account_id}")

    def catch_up(self) -> None:
        if not self._catch_up_queued:
            self._catch_up_queued = True
            self._inbox.put_nowait(_CATCH_UP)

    async def _run(self) -> None:
        """Read forever; whatever breaks (the database, the bus) is retried, never fatal:
        listeners would otherwise wait on a feed that no longer reads."""
        while not self.closed:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # broadcaster's own cleanup can raise (KeyError) over a cancellation that
                # came mid-subscribe: a released feed stops here rather than reading on.
                if self.closed or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise asyncio.CancelledError from exc
                delay = _RETRY_SECONDS[min(self._failures, len(_RETRY_SECONDS) - 1)]
                self._failures += 1
                log.warning("event feed of %s failed (%s); restarting in %.1fs", self.sub_account_id,
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)

    async def _read(self) -> None:
        async with self._feeds.bus.subscribe(subaccount_channel(self.sub_account_id)) as live:
            pump = asyncio.create_task(self._pump(live))
            try:
                if self.ready.is_set():
                    self.catch_up()  # restarted: whatever came meanwhile is in the log
                else:
                    # Listening before reading the head: whatever commits after this read is relayed to us.
                    heads = await _retrying(lambda: self._feeds.read_heads([self.sub_account_id]))
                    self.head = heads[self.sub_account_id][0]
                    self.ready.set()
                self._failures = 0
                while True:
                    if pump.done():
                        pump.result()  # the bus subscription ended or broke: start over
                        raise ConnectionError("event bus subscription ended")
                    item = await self._inbox.get()
                    await _retrying(lambda item=item: self._handle(item))
            finally:
                pump.cancel()

    async def _pump(self, live: AsyncIterator[DomainEvent]) -> None:
        async for event in live:
            self._inbox.put_nowait(event)
        self.catch_up()  # wakes the reader, which sees this pump has ended

    async def _handle(self, item: DomainEvent) -> None:
        if item is _CATCH_UP or item.type == EventType.BUS_RESUMED:
            self._catch_up_queued = False
            await self._fill(None)
        elif item.seq is None or item.seq <= self.head:
            return  # not logged, or already handed out (a replayed relay, or read from the log first)
        else:
            if item.seq > self.head + 1:
                await self._fill(item.seq - 1)
            if item.seq == self.head + 1:
                self._dispatch(item)

    async def _fill(self, through: int | None) -> None:
        while True:
            rows = await self._feeds.read_log(self.sub_account_id, self.head, through)
            for row in rows:
                self._dispatch(DomainEvent.from_log_row(self.sub_account_id, row))
            if len(rows) < REPLAY_PAGE:
                return

    def _dispatch(self, event: DomainEvent) -> None:
        self.head = event.seq or self.head
        for listener in list(self.listeners):
            listener.offer(event)


class EventFeeds:
    """The process's feeds, one per sub-account with readers, and the poll that backs the bus."""

    def __init__(self, bus: Any, engine: Any, poll_seconds: float) -> None:
        self.bus = bus
        self._engine = engine
        self._poll_seconds = poll_seconds
        self._feeds: dict[uuid.UUID, SubAccountFeed] = {}
        self._poller: asyncio.Task[None] | None = None
        self._replays = asyncio.Semaphore(MAX_CONCURRENT_REPLAYS)

    async def read_heads(self, sub_account_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
        async with self._engine.connect() as conn:
            return await event_log.heads(conn, sub_account_ids)

    async def read_log(self, sub_account_id: uuid.UUID, after: int, through: int | None) -> list[Any]:
        async with self._engine.connect() as conn:
            return list(await event_log.read_after(conn, sub_account_id, after, through=through, limit=REPLAY_PAGE))

    @asynccontextmanager
    async def listen(
        self, sub_account_id: uuid.UUID, after: int | None, accept: Callable[[DomainEvent], bool]
    ) -> AsyncIterator[AsyncIterator[DomainEvent]]:
        """The sub-account's events that ``accept`` takes, after ``after`` (None: from now
        on), each once and in order. A cursor that cannot be replayed (older than the
        log's retention, or unknown) first gives an ``EVENTS_MISSED`` event carrying the
        position the stream goes on from."""
        feed = self._acquire(sub_account_id)
        listener = _Listener(accept)
        try:
            await feed.ready.wait()
            feed.listeners.add(listener)  # no await since ready: head and registration agree
            start = feed.head
            metrics.SUBSCRIBERS.inc()
            try:
                yield self._events(feed, listener, after, start)
            finally:
                metrics.SUBSCRIBERS.dec()
        finally:
            feed.listeners.discard(listener)
            self._release(feed)

    async def _events(self, feed: SubAccountFeed, listener: _Listener, after: int | None,
                      start: int) -> AsyncIterator[DomainEvent]:
        position = start
        if after is not None:
            async with self._replays:
                last_seq, purged_through = (await _retrying(lambda: self.read_heads([feed.sub_account_id])))[
                    feed.sub_account_id]
            if after < purged_through or after > last_seq:  # cut by the retention, or not this log's
                yield self._missed(feed, start)
            else:
                async for event in self._replay(feed, listener, after, start):
                    yield event
                position = max(start, after)  # a feed behind this cursor skips what the client has
        while True:
            event = await listener.queue.get()
            if event is _CLOSED:
                return
            if event is _OVERFLOW:
                listener.overflowed = False
                target = feed.head  # events after it are queued again from here on
                async for replayed in self._replay(feed, listener, position, target):
                    yield replayed
                position = max(position, target)
                continue
            if event.seq is None or event.seq <= position:
                continue
            position = event.seq
            yield event

    def _missed(self, feed: SubAccountFeed, resume_at: int) -> DomainEvent:
        return DomainEvent(type=EventType.EVENTS_MISSED, sub_account_id=str(feed.sub_account_id), seq=resume_at)

    async def _replay(self, feed: SubAccountFeed, listener: _Listener, after: int,
                      through: int) -> AsyncIterator[DomainEvent]:
        """The accepted events in ``(after, through]``; if the retention purge removed some
        of them meanwhile, ``EVENTS_MISSED`` (resuming at ``through``) instead of a gap."""
        while after < through:
            async with self._replays:
                rows = await _retrying(lambda after=after: self.read_log(feed.sub_account_id, after, through))
            if not rows or rows[0].seq != after + 1:
                yield self._missed(feed, through)
                return
            for row in rows:
                event = DomainEvent.from_log_row(feed.sub_account_id, row)
                after = event.seq or after
                if listener.accept(event):
                    yield event

    def _acquire(self, sub_account_id: uuid.UUID) -> SubAccountFeed:
        feed = self._feeds.get(sub_account_id)
        if feed is None:
            feed = self._feeds[sub_account_id] = SubAccountFeed(self, sub_account_id)
        feed.refs += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="event-feed-poll")
        return feed

    def _release(self, feed: SubAccountFeed) -> None:
        feed.refs -= 1
        if feed.refs <= 0 and self._feeds.get(feed.sub_account_id) is feed:
            del self._feeds[feed.sub_account_id]
            feed.closed = True
            feed.task.cancel()

    async def _poll(self) -> None:
        """The safety net under the bus: a relay lost to a crash, or an outage the bus
        has not noticed yet, is caught up within one period."""
        while self._feeds:
            await asyncio.sleep(self._poll_seconds)
            ready = {sub_id: feed for sub_id, feed in self._feeds.items() if feed.ready.is_set()}
            if not ready:
                continue
            try:
                found = await self.read_heads(list(ready))
            except Exception as exc:  # the database is away; the next period tries again
                log.warning("event log poll failed (%s)", type(exc).__name__)
                continue
            for sub_id, (last_seq, _purged) in found.items():
                if last_seq > ready[sub_id].head:
                    ready[sub_id].catch_up()

    async def close(self) -> None:
        for feed in self._feeds.values():
            feed.closed = True
            for listener in feed.listeners:
                listener.queue.put_nowait(_CLOSED)  # their subscriptions end instead of hanging
        tasks = [feed.task for feed in self._feeds.values()]
        if self._poller is not None:
            tasks.append(self._poller)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._feeds.clear()


async def _retrying(step: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``step`` until it succeeds: a feed outlives database blips (subscribers wait)."""
    attempt = 0
    while True:
        try:
            return await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
            attempt += 1
            log.warning("event feed step failed (%s); retrying in %.1fs", type(exc).__name__, delay)
            await asyncio.sleep(delay)
