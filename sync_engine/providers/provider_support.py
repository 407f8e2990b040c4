"""Provider plumbing both adapters share: the account a sign-in connected, the first
checks of a push body, and dropping a page fetched ahead that nobody will read. What a provider's payloads mean stays in its adapter."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sync_engine.domain import ConnectedAccount, ProviderError, TokenSet
from sync_engine.providers.base import PushRejected
from sync_engine.rules.addresses import normalize_email


def connected_account(
    tokens: TokenSet, address: str | None, display_name: str | None, *, no_address: str
) -> ConnectedAccount:
    """The mailbox a sign-in connected; ``ProviderError(no_address)`` when the profile
    the provider answered with names no mailbox address."""
    if not address or "@" not in address:
        raise ProviderError(no_address)
    return ConnectedAccount(tokens=tokens, address=normalize_email(address), display_name=display_name)


def load_push_json(body: bytes, *, max_bytes: int, what: str) -> Any:
    """A push body parsed as JSON, refused (``PushRejected``) when larger than
    ``max_bytes`` or not JSON. ``what`` names the body in the refusal."""
    if len(body) > max_bytes:
        raise PushRejected(f"{what} too large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PushRejected(f"{what} is not JSON") from exc


def abandon_prefetch(task: asyncio.Task[Any]) -> None:
    """Cancel a page fetched ahead that nobody will read; its outcome (even an error) is dropped."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
