"""The provider and mailbox client: factory, registry, watch/stop, read flag, one
message, attachments - against the in-memory Gmail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync_engine.domain import Folder, NotFoundError, Provider, WatchState
from sync_engine.providers.gmail import GmailProvider, build_gmail_provider
from sync_engine.providers.gmail.provider import GmailMailboxClient
from sync_engine.providers.registry import build_providers
from sync_engine.settings import Settings


def test_factory_and_registry_do_no_network():
    settings = Settings(gmail_base_url="https://127.0.0.1:9/unreachable", google_certs_url="https://127.0.0.1:9/certs",
                        public_base_url="https://crm.example.com/")
    provider = build_gmail_provider(settings)
    assert isinstance(provider, GmailProvider) and provider.provider is Provider.GMAIL
    assert provider.push.audience == "https://crm.example.com/webhooks/gmail"
    assert isinstance(build_providers(settings)[Provider.GMAIL], GmailProvider)
    explicit = build_gmail_provider(Settings(gmail_push_audience="https://push.example.com/aud"))
    assert explicit.push.audience == "https://push.example.com/aud"


def client(fake, make_api) -> GmailMailboxClient:
    return GmailMailboxClient(make_api(fake.transport()), "projects/p/topics/gmail")


async def test_watch_renew_and_stop(fake_gmail, make_api):
    mailbox = client(fake_gmail, make_api)
    state = await mailbox.watch("https://ignored.test/webhooks/gmail", "unused-client-state")
    assert fake_gmail.watch_requests == [
        {"topicName": "projects/p/topics/gmail", "labelIds": ["INBOX", "SENT"], "labelFilterBehavior": "include"}]
    assert state.subscription_id is None
    assert datetime.now(UTC) + timedelta(days=6) < state.expires_at <= datetime.now(UTC) + timedelta(days=7)
    renewed = await mailbox.renew_watch(state)
    assert len(fake_gmail.watch_requests) == 2 and renewed.expires_at >= state.expires_at
    await mailbox.stop_watch(WatchState(None, state.expires_at))
    assert fake_gmail.units["stop"] == 1


async def test_get_message_set_read_and_attachment(fake_gmail, helpers, make_api):
    message = helpers.full_message("m1", labels=("INBOX", "UNREAD"), subject="Hi")
    fake_gmail.add(message)
    fake_gmail.attachments[("m1", "att-9")] = b"%PDF-1.4 bytes"
    mailbox = client(fake_gmail, make_api)
    got = await mailbox.get_message("m1")
    assert (got.subject, got.folder, got.is_read) == ("Hi", Folder.INBOX, False)
    await mailbox.set_read("m1", True)
    assert "UNREAD" not in fake_gmail.messages["m1"]["labelIds"]
    await mailbox.set_read("m1", False)
    assert "UNREAD" in fake_gmail.messages["m1"]["labelIds"]
    assert await mailbox.fetch_attachment("m1", "att-9") == b"%PDF-1.4 bytes"
    with pytest.raises(NotFoundError):
        await mailbox.get_message("nope")
    with pytest.raises(NotFoundError):
        await mailbox.set_read("nope", True)
    await mailbox.aclose()
