"""The explicit map of provider adapters (no string registries)."""

from __future__ import annotations

from sync_engine.domain import Provider
from sync_engine.providers.base import MailProvider
from sync_engine.settings import Settings


def build_providers(settings: Settings) -> dict[Provider, MailProvider]:
    from sync_engine.providers.gmail import build_gmail_provider
    from sync_engine.providers.outlook import build_outlook_provider

    providers: dict[Provider, MailProvider] = {Provider.OUTLOOK: build_outlook_provider(settings)}
    providers[Provider.GMAIL] = build_gmail_provider(settings)
    return providers
