"""Provider trouble end to end, for both providers: expired cursors, forged pushes, quota."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from db.models import EmailConnection, Message
from sync_engine.job_queue import JobName
from tests.support.flows import connect_mailbox
from tests.support.quiescence import current_connection, sync_caught_up, sync_settled
from tests.support.stack import Stack, Tenant


async def _count(stack: Stack, tenant: Tenant) -> list[str]:
    async with stack.runtime.sessions() as session:
        return sorted(await session.scalars(select(Message.subject).where(Message.sub_account_id == tenant.sub_account_id)))


async def _inbound(stack: Stack, mailbox: str, sender: str, subject: str) -> None:
    response = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound",
                                        json={"from": sender, "to": [mailbox], "subject": subject, "text": subject})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("provider", ["OUTLOOK", "GMAIL"])
async def test_expired_cursor_means_a_full_resync_without_duplicates(stack: Stack, provider: str) -> None:
    contact = f"c-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Resync", contacts=(contact,))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, provider, mailbox)
    await _inbound(stack, mailbox, contact, "one")
    await stack.wait_for(lambda: _count(stack, tenant), what="the first message")
    # The provider forgets our delta token / history id; then something new arrives.
    assert (await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/expire-cursors")).status_code == 200
    await _inbound(stack, mailbox, contact, "two")

    async def both():
        subjects = await _count(stack, tenant)
        return subjects if len(subjects) >= 2 else None

    await stack.wait_for(both, timeout=30, what="the message after the resync")
    await sync_caught_up(stack, tenant)  # another pass after the resync, observed to finish
    assert await _count(stack, tenant) == ["one", "two"]
    conn = (await stack.graphql("{ emailConnection { status } }", token=tenant.token))["emailConnection"]
    assert conn["status"] == "ACTIVE"


async def test_gmail_push_that_is_not_from_google_is_refused_and_changes_nothing(stack: Stack) -> None:
    tenant = await stack.seed_tenant(name="Forged push")
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, "GMAIL", mailbox)

    before = await sync_settled(stack, (await current_connection(stack, tenant)).id, watching=True)
    data = base64.b64encode(json.dumps({"emailAddress": mailbox, "historyId": "999999"}).encode()).decode()
    envelope = {"message": {"data": data, "messageId": "1", "publishTime": "2026-01-01T00:00:00Z"},
                "subscription": "projects/x/subscriptions/y"}
    audience = f"{stack.base_url}/webhooks/gmail"
    forger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    forged = jwt.encode({"iss": "https://accounts.google.com", "aud": audience, "email": stack.settings.gmail_push_service_account,
                         "email_verified": True, "sub": "1", "iat": now, "exp": now + timedelta(minutes=5)},
                        forger_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()),
                        algorithm="RS256", headers={"kid": "forged"})
    for headers in ({}, {"Authorization": f"Bearer {forged}"}, {"Authorization": "Bearer not-a-jwt"}):
        response = await stack.http.post("/webhooks/gmail", json=envelope, headers=headers)
        assert response.status_code == 401, (headers, response.status_code)
    async with stack.runtime.sessions() as session:
        after = await session.scalar(select(EmailConnection).where(EmailConnection.id == before.id))
        pending = await session.scalar(select(func.count(Message.id)).where(Message.sub_account_id == tenant.sub_account_id))
    assert after.sync_requested_seq == before.sync_requested_seq and pending == 0


async def test_gmail_quota_429_slows_the_import_down_but_it_finishes(stack: Stack) -> None:
    contact = f"q-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Quota", contacts=(contact,))
    mailbox = tenant.user_email
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": "gmail", "address": mailbox, "name": "Owner"})
    specs = [{"from": contact, "to": [mailbox], "subject": f"m{i:02d}", "text": "x"} for i in range(40)]
    assert (await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound/bulk", json={"messages": specs})).status_code == 201
    config = (await stack.sandbox.get("/_sandbox/config")).json()
    await stack.sandbox.patch("/_sandbox/config", json={"gmail_quota_per_minute": 150, "gmail_quota_window_seconds": 2})
    try:
        await stack.sandbox.delete("/_sandbox/requests")
        await connect_mailbox(stack, tenant, "GMAIL", mailbox)

        async def all_in():
            subjects = await _count(stack, tenant)
            return subjects if len(subjects) >= 40 else None

        await stack.wait_for(all_in, timeout=60, what="the throttled import")
        log = (await stack.sandbox.get("/_sandbox/requests", params={"mailbox": mailbox})).json()
        assert any(r["status"] == 429 for r in log), "the lowered quota was never hit"
        assert await _count(stack, tenant) == [f"m{i:02d}" for i in range(40)]
    finally:
        await stack.sandbox.patch("/_sandbox/config", json={
            "gmail_quota_per_minute": config.get("gmail_quota_per_minute", 15000),
            "gmail_quota_window_seconds": config.get("gmail_quota_window_seconds", 60)})


@pytest.mark.parametrize("provider", ["OUTLOOK", "GMAIL"])
async def test_push_registrations_are_renewed_before_they_expire(stack: Stack, provider: str) -> None:
    tenant = await stack.seed_tenant(name="Renewal")
    await connect_mailbox(stack, tenant, provider, tenant.user_email)

    async def registered():
        async with stack.runtime.sessions() as session:
            conn = await session.scalar(select(EmailConnection).where(EmailConnection.user_id == tenant.user_id))
        return conn if conn.watch_expires_at and conn.last_sync_at and conn.status == "active" else None

    conn = await stack.wait_for(registered, what="a push registration and the first import")
    soon = datetime.now(UTC) + timedelta(hours=2)  # inside the renewal window (a day ahead)
    async with stack.runtime.sessions.begin() as session:
        (await session.get(EmailConnection, conn.id)).watch_expires_at = soon
    await stack.runtime.jobs.run_periodic(JobName.RENEW_EXPIRING_WATCHES)

    async def renewed():
        async with stack.runtime.sessions() as session:
            fresh = await session.get(EmailConnection, conn.id)
        return fresh if fresh.watch_expires_at > soon + timedelta(hours=12) else None

    fresh = await stack.wait_for(renewed, what="the renewed registration")
    assert fresh.status == "active"
    if provider == "OUTLOOK":  # the same Graph subscription, with a later expiry at Microsoft too
        assert fresh.watch_id == conn.watch_id
        subs = [s for s in (await stack.sandbox.get("/_sandbox/subscriptions")).json() if s.get("id") == conn.watch_id]
        assert len(subs) == 1
