"""The Gmail adapter against the real sandbox (Google OAuth, Gmail API v1, the batch
endpoint, per-user quota, Pub/Sub push with OIDC tokens): the shared provider harness
(``tests/support/provider_harness.py``) for Gmail, and a live Pub/Sub push endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.adapters import PushReceiver
from tests.support.provider_harness import (  # noqa: F401  (fixtures, offered to every test here)
    GMAIL,
    ProviderSpec,
    _reset_world,
    checkpoint_factory,
    connected,
    control,
    harness,
    mailbox,
    provider,
    refreshed,
    sandbox,
    sleeps,
    world,
)


@pytest.fixture(scope="session")
def harness_spec() -> ProviderSpec:
    return GMAIL


@pytest.fixture
def push_receiver() -> Iterator[PushReceiver]:
    receiver = PushReceiver()
    yield receiver
    receiver.close()
