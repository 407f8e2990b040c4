"""Subscribers keep receiving events after Redis restarts (DESIGN.md section 6)."""

from __future__ import annotations

import asyncio

import pytest

from broadcaster import Broadcast

from sync_engine.event_backends import SupervisedRedisBackend
from sync_engine.events import BroadcastEventBus, DomainEvent, EventType
from tests.support.private_redis import PrivateRedis


async def _next(subscriber, timeout: float = 10.0) -> str:  # type: ignore[no-untyped-def]
    event = await asyncio.wait_for(subscriber.get(), timeout=timeout)
    return event.message


async def test_a_subscriber_survives_a_redis_restart(private_redis: PrivateRedis) -> None:
    url = private_redis.url
    backend = SupervisedRedisBackend(url)
    publisher = Broadcast(url)  # another process's plain publisher, like the worker's
    async with Broadcast(backend=backend) as bus, publisher:
        async with bus.subscribe("thread.t1") as subscriber:
            await asyncio.sleep(0.1)
            await publisher.publish("thread.t1", "before")
            assert await _next(subscriber) == "before"

            await asyncio.to_thread(private_redis.restart)

            # Publishing works at once; delivery resumes once the listener has resubscribed,
            # and the first thing the subscriber hears is that it may have missed events.
            heard: list[str] = []
            for _ in range(100):
                await publisher.publish("thread.t1", "after")
                try:
                    heard.append(await _next(subscriber, timeout=0.2))
                except asyncio.TimeoutError:
                    continue
                if heard[-1] == "after":
                    break
            else:
                raise AssertionError(f"the subscriber never heard from Redis again (heard {heard})")
            assert DomainEvent.from_json(heard[0]).type == EventType.EVENTS_MISSED
            assert heard[1:] == ["after"]
            assert backend.reconnects >= 1


async def test_publishing_while_redis_is_down_loses_the_event_not_the_change(private_redis: PrivateRedis) -> None:
    """Events are announced after their change committed: a bus outage must not raise into it."""
    async with Broadcast(backend=SupervisedRedisBackend(private_redis.url)) as broadcast:
        bus = BroadcastEventBus(broadcast)
        event = DomainEvent(type=EventType.MESSAGE_ADDED, sub_account_id="s1", thread_id="t1")
        await bus.publish(event)
        assert bus.dropped == 0
        await asyncio.to_thread(private_redis.stop)
        await bus.publish(event)  # subaccount + thread channels: two publishes, both refused
        assert bus.dropped == 2
        await asyncio.to_thread(private_redis.start)
        async with Broadcast(private_redis.url) as listener, listener.subscribe("thread.t1") as subscriber:
            await asyncio.sleep(0.1)
            await bus.publish(event)
            # The publisher tells the channels it failed to reach, before the next event.
            assert DomainEvent.from_json(await _next(subscriber)).type == EventType.EVENTS_MISSED
            assert DomainEvent.from_json(await _next(subscriber)).type == EventType.MESSAGE_ADDED
            await bus.publish(event)
            assert DomainEvent.from_json(await _next(subscriber)).type == EventType.MESSAGE_ADDED  # once only
        assert bus.dropped == 2


async def test_a_subscription_refused_during_an_outage_is_not_resubscribed(private_redis: PrivateRedis) -> None:
    backend = SupervisedRedisBackend(private_redis.url)
    async with Broadcast(backend=backend) as bus:
        async with bus.subscribe("thread.live"):
            await asyncio.sleep(0.1)
            await asyncio.to_thread(private_redis.stop)
            with pytest.raises(Exception):  # noqa: B017 - whatever broadcaster lets through
                async with bus.subscribe("thread.refused"):
                    pass
            assert backend._channels == {"thread.live"}
            await asyncio.to_thread(private_redis.start)
