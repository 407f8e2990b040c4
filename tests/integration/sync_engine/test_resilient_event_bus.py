"""The Redis event bus outlives Redis restarts (DESIGN.md section 6), on public APIs only."""

from __future__ import annotations

import asyncio

from broadcaster import Broadcast

from sync_engine.event_backends import ResilientRedisBackend
from sync_engine.events import BroadcastEventBus, DomainEvent, EventType
from tests.support.private_redis import PrivateRedis


async def _next(subscriber, timeout: float = 10.0) -> str:  # type: ignore[no-untyped-def]
    event = await asyncio.wait_for(subscriber.get(), timeout=timeout)
    return event.message


async def _publish_until_heard(publisher: Broadcast, subscriber, channel: str, message: str) -> list[str]:  # type: ignore[no-untyped-def]
    heard: list[str] = []
    for _ in range(200):
        await publisher.publish(channel, message)
        try:
            heard.append(await _next(subscriber, timeout=0.1))
        except TimeoutError:
            continue
        if heard[-1] == message:
            return heard
    raise AssertionError(f"the subscriber never heard {message!r} (heard {heard})")


async def test_a_subscriber_survives_a_redis_restart(private_redis: PrivateRedis) -> None:
    url = private_redis.url
    backend = ResilientRedisBackend(url)
    publisher = Broadcast(url)  # another process's plain publisher, like the worker's
    async with Broadcast(backend=backend) as bus, publisher, bus.subscribe("subaccount.s1") as subscriber:
        assert await _publish_until_heard(publisher, subscriber, "subaccount.s1", "before") == ["before"]

        await asyncio.to_thread(private_redis.restart)

        # Publishing works at once; delivery resumes once the reader has resubscribed, and the
        # first thing the channel hears is that the bus is back (readers then check the log).
        heard = await _publish_until_heard(publisher, subscriber, "subaccount.s1", "after")
        assert DomainEvent.from_json(heard[0]).type == EventType.BUS_RESUMED
        assert heard[1:] == ["after"]
        assert backend.reconnects >= 1


async def test_a_subscription_made_during_an_outage_receives_once_redis_is_back(private_redis: PrivateRedis) -> None:
    backend = ResilientRedisBackend(private_redis.url)
    async with Broadcast(backend=backend) as bus:
        async with bus.subscribe("subaccount.live") as live:
            await asyncio.to_thread(private_redis.stop)
            async with bus.subscribe("subaccount.late") as late:  # does not fail: subscribed on reconnect
                await asyncio.to_thread(private_redis.start)
                async with Broadcast(private_redis.url) as publisher:
                    assert (await _publish_until_heard(publisher, late, "subaccount.late", "hello"))[-1] == "hello"
                    assert (await _publish_until_heard(publisher, live, "subaccount.live", "again"))[-1] == "again"
        assert backend.reconnects >= 1


async def test_relaying_while_redis_is_down_loses_the_relay_not_the_change(private_redis: PrivateRedis) -> None:
    """The event is in the log already; a bus outage must not raise into the committed change."""
    async with Broadcast(backend=ResilientRedisBackend(private_redis.url)) as broadcast:
        bus = BroadcastEventBus(broadcast)
        event = DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id="s1", thread_id="t1", seq=1)
        await bus.publish(event)
        assert bus.dropped == 0
        await asyncio.to_thread(private_redis.stop)
        await bus.publish(event)
        assert bus.dropped == 1
        await asyncio.to_thread(private_redis.start)
        async with Broadcast(private_redis.url) as listener, listener.subscribe("subaccount.s1") as subscriber:
            for _ in range(200):
                await bus.publish(event)
                try:
                    assert DomainEvent.from_json(await _next(subscriber, timeout=0.1)) == event
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError("relaying never worked again")
        assert bus.dropped == 1


async def test_channels_subscribed_at_the_same_moment_all_receive(private_redis: PrivateRedis) -> None:
    """Many clients come back at once (an API restart): every channel is listened to, on one connection."""
    from contextlib import AsyncExitStack

    channels = [f"subaccount.c{n}" for n in range(8)]
    async with Broadcast(backend=ResilientRedisBackend(private_redis.url)) as bus, \
            Broadcast(private_redis.url) as publisher, AsyncExitStack() as stack:
        subscribers = await asyncio.gather(*(stack.enter_async_context(bus.subscribe(c)) for c in channels))
        for channel, subscriber in zip(channels, subscribers, strict=True):
            assert (await _publish_until_heard(publisher, subscriber, channel, f"to {channel}"))[-1] == f"to {channel}"
        # One pub/sub connection holds them all (none left open and unread).
        probe = Broadcast(private_redis.url)
        async with probe:
            counts = await probe._backend._conn.pubsub_numsub(*channels)
        assert [int(n) for _, n in counts] == [1] * len(channels)
