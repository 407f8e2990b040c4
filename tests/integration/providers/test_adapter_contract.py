"""Parts of the adapter contract (``sync_engine/providers/base.py``) that read the same for
Outlook and Gmail: throttling that does not end surfaces as ``ThrottledError`` after
bounded, honoured waits; a revoked grant is ``AuthRevokedError``; header injection is
refused before anything is saved or sent. Each test runs once per provider."""

from __future__ import annotations

import uuid

import pytest

from sync_engine.domain import Address, AuthRevokedError, OutgoingMessage, ThrottledError

# A request every full sync makes, and the way each provider says "not now" there.
THROTTLED = {
    "outlook": {"status": 503, "path": "/mailFolders/inbox/messages/delta"},
    "gmail": {"status": 429, "path": "/gmail/v1/users/me/profile"},
}


async def test_persistent_throttling_surfaces_throttled_error(connected, world, control, sleeps):
    _, client = connected
    throttled = THROTTLED[world.name]
    control.delete("/requests")
    world.fault(**throttled, retry_after="0.1", count=-1)
    with pytest.raises(ThrottledError) as info:
        [page async for page in client.sync(None)]
    assert info.value.retry_after == pytest.approx(0.1)
    # (An injected fault answers before the sandbox knows the mailbox: the log has no address.)
    refused = [r for r in world.requests(None, throttled["path"]) if r["status"] == throttled["status"]]
    # Bounded: a few attempts, each but the last followed by the Retry-After wait.
    assert 1 < len(refused) <= 6
    assert sleeps.calls == [pytest.approx(0.1, abs=0.02)] * (len(refused) - 1)


async def test_revoked_grant_raises_auth_revoked(connected, control, refreshed):
    account, client = connected
    assert control.post(f"/mailboxes/{account.address}/revoke").status_code == 200
    with pytest.raises(AuthRevokedError):
        [page async for page in client.sync(None)]
    assert refreshed.calls == []  # nothing new to persist: the refresh was refused


async def test_header_injection_is_refused_before_any_call(connected, world, control, checkpoint_factory):
    account, client = connected
    control.delete("/requests")
    checkpoint = checkpoint_factory()
    message = OutgoingMessage(
        message_id=f"<crm-{uuid.uuid4().hex}@emailsync.test>",
        sender=Address(account.address, account.display_name),
        to=[Address("client@example.com", "A Client")],
        subject="Hi\r\nBcc: victim@example.com",
        html="<p>Hello from the CRM</p>",
        text="Hello from the CRM",
    )
    with pytest.raises(ValueError):
        await client.send(message, checkpoint)
    assert checkpoint.saves == [] and world.requests(account.address) == []
