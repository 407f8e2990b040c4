"""What both provider adapters must do alike: each test here runs against Outlook and
Gmail, through the shared provider harness (``tests/support/provider_harness.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.provider_harness import (  # noqa: F401  (fixtures, offered to every test here)
    GMAIL,
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


@pytest.fixture(scope="session", params=[OUTLOOK, GMAIL], ids=lambda spec: spec.name)
def harness_spec(request: pytest.FixtureRequest) -> ProviderSpec:
    return request.param


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    quiet_msal_warnings(items, Path(__file__).parent)
