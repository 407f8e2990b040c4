"""The Outlook adapter against the real sandbox (Microsoft identity platform + Graph):
the shared provider harness (``tests/support/provider_harness.py``) for Outlook, and a
live endpoint for Graph change notifications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.adapters import WebhookReceiver
from tests.support.provider_harness import (  # noqa: F401  (fixtures, offered to every test here)
    OUTLOOK,
    ProviderSpec,
    _reset_world,
    checkpoint_factory,
    connected,
    control,
    harness,
    mailbox,
    provider,
    quiet_msal_warnings,
    refreshed,
    sandbox,
    sleeps,
    world,
)


@pytest.fixture(scope="session")
def harness_spec() -> ProviderSpec:
    return OUTLOOK


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    quiet_msal_warnings(items, Path(__file__).parent)
