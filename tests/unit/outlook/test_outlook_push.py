"""parse_push on the published Graph change and lifecycle notifications."""

from __future__ import annotations

import json

import pytest

from sync_engine.domain import PushKind, PushNotice
from sync_engine.providers.base import PushRejected
from sync_engine.providers.outlook import build_outlook_provider
from sync_engine.settings import Settings


@pytest.fixture(scope="module")
def provider():
    return build_outlook_provider(Settings())


async def test_change_notification_sample(provider, sample_bytes):
    notices = await provider.parse_push({}, {}, sample_bytes("graph_notification.json"))
    assert notices == [
        PushNotice(kind=PushKind.CHANGED, subscription_id="{subscription_guid}", client_state="secretClientValue")
    ]


@pytest.mark.parametrize(
    "name, kind, subscription_id, client_state",
    [
        (
            "graph_lifecycle_reauthorizationRequired.json",
            PushKind.REAUTHORIZATION_REQUIRED,
            "e3898f08-5cd0-4a6a-80fc-6addbfb73b7b",
            "{secret client state}",
        ),
        ("graph_lifecycle_subscriptionRemoved.json", PushKind.SUBSCRIPTION_REMOVED, "<subscription_guid>", "<secretClientState>"),
        ("graph_lifecycle_missed.json", PushKind.MISSED, "<subscription_guid>", "<secretClientState>"),
    ],
)
async def test_lifecycle_samples(provider, sample_bytes, name, kind, subscription_id, client_state):
    notices = await provider.parse_push({}, {"lifecycle": "1"}, sample_bytes(name))
    assert notices == [PushNotice(kind=kind, subscription_id=subscription_id, client_state=client_state)]


async def test_batch_is_deduplicated_per_subscription_and_kind(provider, sample):
    note = sample("graph_notification.json")["value"][0]
    other = {**note, "subscriptionId": "other", "changeType": "updated"}
    body = json.dumps({"value": [note, {**note, "changeType": "updated"}, other, note]}).encode()
    notices = await provider.parse_push({}, {}, body)
    assert [(n.kind, n.subscription_id) for n in notices] == [
        (PushKind.CHANGED, "{subscription_guid}"),
        (PushKind.CHANGED, "other"),
    ]


async def test_unknown_lifecycle_event_is_ignored(provider):
    body = json.dumps({"value": [{"subscriptionId": "s", "clientState": "c", "lifecycleEvent": "somethingNew"}]})
    assert await provider.parse_push({}, {}, body.encode()) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"value": "x"}',
        b'{"value": []}',
        b'{"value": ["x"]}',
        b'{"value": [{"changeType": "created", "clientState": "c"}]}',  # no subscriptionId
        b'{"value": [{"subscriptionId": "s", "clientState": 3, "changeType": "created"}]}',
        b'{"value": [{"subscriptionId": "s", "clientState": "c"}]}',  # neither change nor lifecycle
        b'{"value": [{"subscriptionId": "s", "lifecycleEvent": 5}]}',
    ],
)
async def test_malformed_pushes_are_rejected(provider, body):
    with pytest.raises(PushRejected):
        await provider.parse_push({}, {}, body)


async def test_validation_request_body_is_not_a_notification(provider, sample_bytes):
    # The validation handshake is answered by the API route; its (text) body is no push.
    with pytest.raises(PushRejected):
        await provider.parse_push({}, {"validationToken": "abc"}, sample_bytes("graph_validation_request.txt"))
