"""One harness for the provider adapters' integration tests: an adapter against the real
sandbox, over HTTPS on loopback with the sandbox's own CA, for either provider.

No HTTP layer is mocked: msal / google-auth talk to the sandbox's token endpoints, httpx
to its Graph or Gmail API. What differs between the providers is said once, in a
``ProviderSpec`` (how to point the adapter at the sandbox, how to build it, which sandbox
settings to restore after a test); everything else - mailboxes, sign-in, the world the
tests drive and read through the control API (``/_sandbox``) - is the same.

The adapters' retry waits go to a ``RecordingSleep``: tests assert the Retry-After and
backoff delays asked for instead of spending them (``sleeps.real = True`` waits them out,
for a test whose peer keeps real time).

A directory's conftest defines a session ``harness_spec`` fixture (one provider, or
parametrized over both) and imports the fixtures below, which pytest then offers to
every test there.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from sync_engine.domain import ConnectedAccount
from sync_engine.providers.base import MailboxClient, MailProvider
from sync_engine.providers.gmail import build_gmail_provider
from sync_engine.providers.outlook import build_outlook_provider
from sync_engine.settings import Settings
from tests.support.adapters import (
    Checkpoint,
    Recorder,
    add_fault,
    add_mailbox,
    inbound,
    mailbox_messages,
    owner_sends,
    requests_log,
)
from tests.support.adapters import sign_in as sign_in_through_browser
from tests.support.sleeps import RecordingSleep

# Gmail: where our API would receive Pub/Sub pushes, and the account Google signs them as.
PUBLIC_BASE_URL = "https://crm.emailsync.test"
PUSH_ACCOUNT = "gmail-push@emailsync-tests.iam.gserviceaccount.com"


def _outlook_settings(sandbox: SandboxServer) -> dict[str, Any]:
    return {
        "microsoft_authority": sandbox.authority,
        "graph_base_url": sandbox.graph_base_url,
        "ca_bundle": sandbox.ca_file,
        "microsoft_client_id": "emailsync-outlook-tests",
        "graph_page_size": 10,  # small pages: a test of a dozen messages spans several
    }


def _gmail_settings(sandbox: SandboxServer) -> dict[str, Any]:
    base = sandbox.base_url
    return {
        "google_auth_uri": f"{base}/o/oauth2/v2/auth",
        "google_token_uri": f"{base}/token",
        "google_revoke_uri": f"{base}/revoke",
        "google_certs_url": f"{base}/oauth2/v1/certs",
        "gmail_base_url": base,
        "ca_bundle": sandbox.ca_file,
        "google_client_id": "emailsync-gmail-tests.apps.googleusercontent.com",
        "public_base_url": PUBLIC_BASE_URL,
        "gmail_push_service_account": PUSH_ACCOUNT,
        "gmail_pubsub_topic": "projects/emailsync-tests/topics/gmail",
    }


@dataclass(frozen=True)
class ProviderSpec:
    """What is particular to one provider's adapter under test."""

    name: str  # the sandbox's provider name, and the test ids' ("outlook", "gmail")
    mailbox_domain: str
    redirect_uri: str
    settings: Callable[[SandboxServer], dict[str, Any]]
    build: Callable[..., MailProvider]  # build_*_provider(settings, sleep=...)
    # Sandbox settings a test may change, restored after each test.
    sandbox_defaults: dict[str, Any] = field(default_factory=dict)


OUTLOOK = ProviderSpec(
    name="outlook",
    mailbox_domain="contoso.test",
    redirect_uri="https://app.emailsync.test/oauth/outlook/callback",
    settings=_outlook_settings,
    build=build_outlook_provider,
    sandbox_defaults={"delta_string_booleans": False},
)
GMAIL = ProviderSpec(
    name="gmail",
    mailbox_domain="gmail.test",
    redirect_uri="https://app.emailsync.test/oauth/gmail/callback",
    settings=_gmail_settings,
    build=build_gmail_provider,
    sandbox_defaults={"gmail_quota_per_minute": 15000, "gmail_quota_window_seconds": 60.0},
)


class ProviderHarness:
    """One provider's adapter against one sandbox: builds adapters, makes mailboxes, signs
    in, and drives and reads the sandbox (the ``world`` the tests see)."""

    public_base_url = PUBLIC_BASE_URL
    push_account = PUSH_ACCOUNT

    def __init__(self, spec: ProviderSpec, sandbox: SandboxServer) -> None:
        self.spec = spec
        self.sandbox = sandbox
        self.control = sandbox.control_client(timeout=30)
        self.ssl = ssl.create_default_context(cafile=sandbox.ca_file)
        self.sleeps = RecordingSleep()
        self.provider = self.build_provider()

    def close(self) -> None:
        self.provider.auth.close()  # type: ignore[attr-defined]
        self.control.close()

    def __enter__(self) -> ProviderHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def redirect_uri(self) -> str:
        return self.spec.redirect_uri

    # ---- adapters

    def settings(self, **overrides: Any) -> Settings:
        return Settings(**{**self.spec.settings(self.sandbox), **overrides})

    def build_provider(self, **overrides: Any) -> Any:
        """Another adapter (settings overridden), waiting through the harness's sleep;
        the caller closes its ``auth``."""
        return self.spec.build(self.settings(**overrides), sleep=self.sleeps)

    def new_mailbox(self) -> str:
        return add_mailbox(self.control, self.spec.name, f"user-{uuid.uuid4().hex[:10]}@{self.spec.mailbox_domain}")

    async def sign_in(self, address: str, provider: MailProvider | None = None) -> ConnectedAccount:
        return await sign_in_through_browser(provider or self.provider, self.sandbox.ca_file, address,
                                             self.spec.redirect_uri)

    @asynccontextmanager
    async def connected(self, address: str, refreshed: Recorder) -> AsyncIterator[tuple[ConnectedAccount, Any]]:
        """A signed-in mailbox and its client (closed afterwards)."""
        account = await self.sign_in(address)
        client: MailboxClient = self.provider.client(account.tokens, refreshed)
        try:
            yield account, client
        finally:
            await client.aclose()

    def reset(self) -> None:
        """What a test may have changed in the shared sandbox and harness, undone."""
        self.control.delete("/faults")
        response = self.control.patch("/config", json=self.spec.sandbox_defaults)
        assert response.status_code == 200, response.text
        self.sleeps.reset()

    # ---- the world, through the control API

    def messages(self, address: str, folder: str | None = None) -> list[dict[str, Any]]:
        return mailbox_messages(self.control, address, folder)

    def message(self, address: str, message_id: str) -> dict[str, Any]:
        r = self.control.get(f"/mailboxes/{address}/messages/{message_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def requests(self, address: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        return requests_log(self.control, address, path)

    def inbound(self, address: str, **fields: Any) -> dict[str, Any]:
        return inbound(self.control, address, **fields)

    def inbound_bulk(self, address: str, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            m.setdefault("from", {"address": "client@example.com", "name": "A Client"})
        r = self.control.post(f"/mailboxes/{address}/inbound/bulk", json={"messages": messages})
        assert r.status_code in (200, 201), r.text

    def owner_sends(self, address: str, **fields: Any) -> dict[str, Any]:
        return owner_sends(self.control, address, **fields)

    def fault(self, **spec: Any) -> None:
        add_fault(self.control, **spec)

    def config(self, **values: Any) -> None:
        r = self.control.patch("/config", json=values)
        assert r.status_code == 200, r.text

    # Google Pub/Sub (Gmail push)

    def subscribe(self, topic: str, endpoint: str, audience: str, account: str = PUSH_ACCOUNT) -> None:
        r = self.control.post("/google/pubsub/subscriptions", json={
            "topic": topic, "pushEndpoint": endpoint, "audience": audience, "serviceAccountEmail": account})
        assert r.status_code in (200, 201), r.text

    def watches(self) -> list[dict[str, Any]]:
        r = self.control.get("/google/watches")
        assert r.status_code == 200, r.text
        return r.json()


def quiet_msal_warnings(items: list[pytest.Item], under: Path) -> None:
    """msal warns on every query-mode flow; the adapter filters it at import, but pytest
    resets warning filters per test. Our callback route is a GET by design."""
    for item in items:
        if str(item.path).startswith(str(under)):
            item.add_marker(pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended"))


# ---- fixtures: a conftest imports these and defines ``harness_spec``


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture(scope="session")
def harness(harness_spec: ProviderSpec, sandbox: SandboxServer) -> Iterator[ProviderHarness]:
    with ProviderHarness(harness_spec, sandbox) as built:
        yield built


@pytest.fixture(scope="session")
def control(harness: ProviderHarness) -> httpx.Client:
    return harness.control


@pytest.fixture(scope="session")
def provider(harness: ProviderHarness) -> Any:
    return harness.provider


@pytest.fixture
def world(harness: ProviderHarness) -> ProviderHarness:
    return harness


@pytest.fixture(autouse=True)
def _reset_world(harness: ProviderHarness) -> Iterator[None]:
    yield
    harness.reset()


@pytest.fixture
def sleeps(harness: ProviderHarness) -> RecordingSleep:
    """The delays the adapters asked to wait in this test."""
    return harness.sleeps


@pytest.fixture
def mailbox(harness: ProviderHarness) -> str:
    """A fresh mailbox (unique address) for one test."""
    return harness.new_mailbox()


@pytest.fixture
def refreshed() -> Recorder:
    return Recorder()


@pytest.fixture
async def connected(harness: ProviderHarness, mailbox: str, refreshed: Recorder) -> AsyncIterator[tuple[Any, Any]]:
    async with harness.connected(mailbox, refreshed) as pair:
        yield pair


@pytest.fixture
def checkpoint_factory() -> type[Checkpoint]:
    return Checkpoint
