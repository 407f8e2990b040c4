"""Watches and Pub/Sub push: a push the sandbox signs is accepted; forged tokens, other
audiences and other service accounts are rejected. Pushes arrive over real HTTP at a
receiver, which hands them to ``parse_push`` as the webhook route would."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sync_engine.domain import ChangeKind, PushKind
from sync_engine.providers.base import PushRejected


@pytest.fixture
def topic() -> str:
    return f"projects/emailsync-tests/topics/gmail-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def push_provider(world, topic):
    built = world.build_provider(gmail_pubsub_topic=topic)
    yield built
    built.auth.close()


def audience(world) -> str:
    return f"{world.public_base_url}/webhooks/gmail"


async def watched(push_provider, world, mailbox, refreshed):
    account = await world.sign_in(mailbox, push_provider)
    client = push_provider.client(account.tokens, refreshed)
    state = await client.watch(f"{world.public_base_url}/webhooks/gmail", "ignored")
    return account, client, state


async def test_watch_registers_inbox_and_sent_and_stop_removes_it(push_provider, world, mailbox, refreshed, topic):
    _, client, state = await watched(push_provider, world, mailbox, refreshed)
    try:
        assert state.subscription_id is None
        assert datetime.now(UTC) + timedelta(days=6, hours=23) < state.expires_at <= datetime.now(UTC) + timedelta(days=7)
        (registered,) = [w for w in world.watches() if w["mailbox"] == mailbox]
        assert registered["topicName"] == topic
        assert registered["labelIds"] == ["INBOX", "SENT"] and registered["labelFilterBehavior"] == "include"
        renewed = await client.renew_watch(state)
        assert renewed.expires_at >= state.expires_at
        assert len([r for r in world.requests(mailbox, "/gmail/v1/users/me/watch") if r["status"] == 200]) == 2
        await client.stop_watch(renewed)
        assert [w for w in world.watches() if w["mailbox"] == mailbox] == []
    finally:
        await client.aclose()


async def test_a_push_signed_by_google_is_accepted(push_provider, world, mailbox, refreshed, topic, push_receiver):
    world.subscribe(topic, push_receiver.url, audience(world))
    _, client, _ = await watched(push_provider, world, mailbox, refreshed)
    try:
        cursor = [p async for p in client.sync(None)][-1].cursor
        arrived = world.inbound(mailbox, subject="push me", text="x")
        ((headers, query, body),) = push_receiver.wait_for(1)
        assert headers["authorization"].startswith("Bearer ")
        (notice,) = await push_provider.parse_push(headers, query, body)
        assert notice.kind is PushKind.CHANGED and notice.address == mailbox
        assert int(notice.history_id) > int(cursor["history_id"])
        # the notice leads to the change
        changes = [c for p in [p async for p in client.sync(cursor)] for c in p.changes]
        assert [(c.provider_id, c.kind) for c in changes] == [(arrived["id"], ChangeKind.UPSERT)]
        # a second push is verified against cached certs
        world.inbound(mailbox, subject="again", text="y")
        pushes = push_receiver.wait_for(2)
        await push_provider.parse_push(*pushes[1])
        assert push_provider.push.request.fetches == 1
    finally:
        await client.aclose()


async def test_a_push_for_another_audience_is_rejected(push_provider, world, mailbox, refreshed, topic, push_receiver):
    world.subscribe(topic, push_receiver.url, "https://someone-else.example.com/push")
    _, client, _ = await watched(push_provider, world, mailbox, refreshed)
    try:
        world.inbound(mailbox, subject="x", text="x")
        ((headers, query, body),) = push_receiver.wait_for(1)
        with pytest.raises(PushRejected):
            await push_provider.parse_push(headers, query, body)
    finally:
        await client.aclose()


async def test_a_push_from_another_service_account_is_rejected(push_provider, world, mailbox, refreshed, topic,
                                                               push_receiver):
    world.subscribe(topic, push_receiver.url, audience(world), account="intruder@other.iam.gserviceaccount.com")
    _, client, _ = await watched(push_provider, world, mailbox, refreshed)
    try:
        world.inbound(mailbox, subject="x", text="x")
        ((headers, query, body),) = push_receiver.wait_for(1)
        with pytest.raises(PushRejected):
            await push_provider.parse_push(headers, query, body)
    finally:
        await client.aclose()


async def test_forged_tokens_are_rejected(push_provider, world, mailbox, refreshed, topic, push_receiver):
    world.subscribe(topic, push_receiver.url, audience(world))
    _, client, _ = await watched(push_provider, world, mailbox, refreshed)
    try:
        world.inbound(mailbox, subject="x", text="x")
        ((headers, query, body),) = push_receiver.wait_for(1)
    finally:
        await client.aclose()
    genuine = jwt.decode(headers["authorization"].split(" ", 1)[1], options={"verify_signature": False})
    genuine_kid = jwt.get_unverified_header(headers["authorization"].split(" ", 1)[1])["kid"]
    certs = httpx.get(f"{world.sandbox.base_url}/oauth2/v1/certs", verify=world.sandbox.ssl_context()).json()
    assert genuine_kid in certs
    our_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {**genuine, "iat": now, "exp": now + 3600}
    for kid in (genuine_kid, "our-own-key"):
        forged = jwt.encode(claims, our_key, algorithm="RS256", headers={"kid": kid})
        with pytest.raises(PushRejected):
            await push_provider.parse_push({**headers, "authorization": f"Bearer {forged}"}, query, body)
    hmac_forged = jwt.encode(claims, "a-shared-secret-of-thirty-two-bytes!", algorithm="HS256",
                             headers={"kid": genuine_kid})
    with pytest.raises(PushRejected):
        await push_provider.parse_push({**headers, "authorization": f"Bearer {hmac_forged}"}, query, body)
    with pytest.raises(PushRejected):
        await push_provider.parse_push({k: v for k, v in headers.items() if k != "authorization"}, query, body)
    # the genuine token still passes: what failed was the forgery, not the setup
    (notice,) = await push_provider.parse_push(headers, query, body)
    assert notice.address == mailbox
    assert json.loads(body)["message"]["data"]
