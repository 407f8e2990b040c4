"""Graph subscriptions (watch / renew / stop) and parsing the notifications the sandbox
really posts, change and lifecycle, with the validation handshake done by a live endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync_engine.domain import NotFoundError, PushKind, WatchState


def subscriptions(control, address):
    return [s for s in control.get("/subscriptions").json() if s["mailbox"] == address.lower()]


async def test_watch_renew_stop(connected, control, webhook):
    account, client = connected
    state = await client.watch(webhook.url, "s3cret-state")
    (sub,) = subscriptions(control, account.address)
    assert sub["id"] == state.subscription_id
    assert sub["resource"] == "me/messages"
    assert set(sub["changeType"].split(",")) == {"created", "updated", "deleted"}
    assert sub["notificationUrl"] == webhook.url
    assert sub["lifecycleNotificationUrl"] == webhook.url + "?lifecycle=1"
    assert sub["clientState"] == "s3cret-state"
    lifetime = state.expires_at - datetime.now(UTC)
    assert timedelta(minutes=4100) < lifetime < timedelta(minutes=4230)

    # Renewal moves the expiry forward (here: from a shortened one).
    control.post(f"/subscriptions/{state.subscription_id}/expire")
    with pytest.raises(NotFoundError):
        # An expired subscription is gone for Graph: the service re-creates it.
        await client.renew_watch(state)
    state = await client.watch(webhook.url, "s3cret-state")
    renewed = await client.renew_watch(WatchState(state.subscription_id, datetime.now(UTC)))
    assert renewed.subscription_id == state.subscription_id
    assert renewed.expires_at > datetime.now(UTC) + timedelta(minutes=4100)

    await client.stop_watch(renewed)
    assert [s for s in subscriptions(control, account.address) if s["active"]] == []
    await client.stop_watch(renewed)  # already gone: fine


async def test_real_notifications_parse(connected, world, control, webhook, provider):
    account, client = connected
    state = await client.watch(webhook.url, "state-42")
    msg = world.inbound(account.address, subject="ping", text="x")

    (headers, query, body) = webhook.wait_for(lambda p: b"changeType" in p[2])[0]
    notices = await provider.parse_push(headers, query, body)
    assert [(n.kind, n.subscription_id, n.client_state) for n in notices] == [
        (PushKind.CHANGED, state.subscription_id, "state-42")
    ]
    assert msg["id"].encode() in body  # immutable ids in notifications too

    for event, kind in (("missed", PushKind.MISSED), ("reauthorizationRequired", PushKind.REAUTHORIZATION_REQUIRED),
                        ("subscriptionRemoved", PushKind.SUBSCRIPTION_REMOVED)):
        control.post(f"/subscriptions/{state.subscription_id}/lifecycle", json={"event": event})
        (headers, query, body) = webhook.wait_for(lambda p, e=event: e.encode() in p[2])[0]
        assert query.get("lifecycle") == "1"
        notices = await provider.parse_push(headers, query, body)
        assert [(n.kind, n.subscription_id, n.client_state) for n in notices] == [(kind, state.subscription_id, "state-42")]
