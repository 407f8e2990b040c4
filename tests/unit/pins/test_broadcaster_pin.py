"""What our event bus relies on in broadcaster (pinned in pyproject.toml).

``sync_engine/event_backends.py`` implements broadcaster's backend interface, and
``sync_engine/events.py`` / ``sync_engine/event_feed.py`` rely on how ``Broadcast``
drives a backend and feeds its subscribers. Each test drives that through our own
code; a failure names the module to revisit after upgrading broadcaster.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from broadcaster import Broadcast, BroadcastBackend, Event

from sync_engine.event_backends import ResilientRedisBackend
from sync_engine.events import BroadcastEventBus, DomainEvent, EventType

# Nothing listens here: every Redis call fails at once, which ResilientRedisBackend
# tolerates by design (a channel subscribed during an outage is subscribed on reconnect),
# so broadcaster's calls into it are observable without a Redis server.
_NO_REDIS = "unix:///nonexistent/emailsync-pin-test.sock"
DEADLINE = 5.0


async def _within(awaitable: Any, hint: str) -> Any:
    """The awaitable's result, or a failure naming the module to revisit."""
    try:
        return await asyncio.wait_for(awaitable, DEADLINE)
    except TimeoutError:
        raise AssertionError(f"nothing delivered within {DEADLINE}s: revisit {hint}") from None


def test_our_backend_implements_every_method_of_the_interface() -> None:
    """Broadcast calls these positionally on its backend; ours must define each (the base
    ones raise NotImplementedError) with the same arity."""
    for name, base in inspect.getmembers(BroadcastBackend, inspect.isfunction):
        if name == "__init__":
            continue  # ours takes the URL and never calls the base one (it raises)
        ours = vars(ResilientRedisBackend).get(name)
        assert ours is not None, (
            f"broadcaster's BroadcastBackend has a method `{name}` that sync_engine/event_backends.py "
            "(ResilientRedisBackend) does not implement"
        )
        assert len(inspect.signature(ours).parameters) == len(inspect.signature(base).parameters), (
            f"BroadcastBackend.{name}{inspect.signature(base)} changed: update ResilientRedisBackend.{name} "
            "in sync_engine/event_backends.py"
        )


async def test_broadcast_subscribes_our_backend_once_per_channel() -> None:
    """ResilientRedisBackend resubscribes after a reconnect exactly the channels broadcaster
    subscribed and did not unsubscribe: that needs one backend ``subscribe`` on a channel's
    first local subscriber and one ``unsubscribe`` when its last one leaves."""
    backend = ResilientRedisBackend(_NO_REDIS)
    hint = "sync_engine/event_backends.py (ResilientRedisBackend._channels, resubscribed on reconnect)"
    async with Broadcast(backend=backend) as broadcast:
        async with broadcast.subscribe(channel="a"):
            async with broadcast.subscribe(channel="a"), broadcast.subscribe(channel="b"):
                assert backend._channels == {"a", "b"}, hint
            assert backend._channels == {"a"}, f"a channel with a listener left was unsubscribed: {hint}"
        assert backend._channels == set(), f"the last listener left and the channel stayed subscribed: {hint}"


async def test_an_event_our_backend_queues_reaches_every_subscriber_of_its_channel() -> None:
    """After a reconnect our backend queues ``BUS_RESUMED`` itself (not from Redis); broadcaster
    must hand whatever ``next_published`` returns to each subscriber of that channel only."""
    backend = ResilientRedisBackend(_NO_REDIS)
    marker = DomainEvent.bus_resumed().to_json()
    async with (
        Broadcast(backend=backend) as broadcast,
        broadcast.subscribe(channel="a") as first,
        broadcast.subscribe(channel="a") as second,
        broadcast.subscribe(channel="b") as other,
    ):
        await backend._received.put(Event(channel="a", message=marker))
        await backend._received.put(Event(channel="b", message="after"))
        hint = "sync_engine/event_backends.py (_reconnect's BUS_RESUMED) and sync_engine/event_feed.py"
        for subscriber in (first, second):
            event = await _within(subscriber.get(), hint)
            assert (event.channel, event.message) == ("a", marker), hint
        # Delivered in order: had channel "a"'s event reached "b", it would come first.
        assert (await _within(other.get(), hint)).message == "after", hint


async def test_a_subscriber_that_does_not_read_holds_up_no_one() -> None:
    """Broadcast's one reader task puts each event on every subscriber's queue. Those queues
    are unbounded: a slow subscription (a bulk send's progress loads a row per event) must not
    stall the other subscribers of the process. The embedded mode's memory:// backend too."""
    channel = "subaccount.s1"
    count = 300
    hint = "sync_engine/events.py (BroadcastEventBus.subscribe) and sync_engine/event_feed.py"
    async with Broadcast("memory://") as broadcast:
        bus = BroadcastEventBus(broadcast)
        async with bus.subscribe(channel) as _idle, bus.subscribe(channel) as reading:
            for seq in range(1, count + 1):
                await bus.publish(DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id="s1", seq=seq))
            received = []
            for _ in range(count):
                event = await _within(anext(reading), hint)
                received.append(event.seq)
    assert received == list(range(1, count + 1)), f"events lost or reordered: revisit {hint}"
