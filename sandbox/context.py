"""The sandbox's shared state: configuration, store, grants, faults, request log.

One ``Sandbox`` instance backs one running server. Provider packages keep their
own state (Graph subscriptions, Gmail watches) in ``extensions`` under their
name, and register reset hooks so ``POST /_sandbox/reset`` clears everything.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import httpx

from sandbox.store import Store
from sandbox.tokens import TokenRegistry
from sandbox.traffic import FaultRegistry, RequestLog


@dataclass
class SandboxConfig:
    # Lifetime of access tokens issued by the identity providers, in seconds.
    access_token_ttl: int = 3600
    # Real Graph only calls https webhooks; the app runs on plain http locally.
    webhook_allow_http: bool = True
    validation_timeout: float = 10.0  # Graph's limit for the validationToken echo
    notification_timeout: float = 3.0  # Graph treats slower endpoints as failing
    notification_retries: int = 3
    graph_max_concurrency: int = 4  # in-flight requests per mailbox
    graph_rate_limit: int = 10_000  # requests per mailbox per 10 minutes
    throttle_retry_after: float = 1.0
    graph_latency_ms: int = 0  # simulated service time of each Graph request
    graph_default_page_size: int = 10
    # Published delta samples carry "isRead": "true" as a string; turn this on to
    # make updated items in delta rounds use that quirk.
    delta_string_booleans: bool = False
    max_subscription_minutes: int = 4230
    # Entra ID keeps a refresh token usable after it has been redeemed; turn this
    # on to reject reuse and catch apps that do not store the rotated token.
    strict_refresh_rotation: bool = False

    def update(self, values: dict[str, Any]) -> list[str]:
        """Apply known keys (coercing to the field's type); returns unknown keys."""
        known = {f.name: f for f in fields(self)}
        unknown = [key for key in values if key not in known]
        for key, value in values.items():
            if key in known:
                current = getattr(self, key)
                if isinstance(current, bool):
                    value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
                setattr(self, key, type(current)(value))
        return unknown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None, ca_bundle: str | None = None) -> None:
        self.initial_config = config or SandboxConfig()
        self.config = SandboxConfig(**self.initial_config.to_dict())
        self.store = Store()
        self.tokens = TokenRegistry()
        self.faults = FaultRegistry()
        self.requests = RequestLog()
        # Trust store for outbound calls (webhooks): public roots plus our CA.
        self.ca_bundle = ca_bundle
        self.extensions: dict[str, Any] = {}
        self._reset_hooks: list[Callable[[], None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.http: httpx.AsyncClient | None = None

    def on_reset(self, hook: Callable[[], None]) -> None:
        self._reset_hooks.append(hook)

    def reset(self) -> None:
        self.config = SandboxConfig(**self.initial_config.to_dict())
        self.store.reset()
        self.tokens.reset()
        self.faults.clear()
        self.requests.clear()
        for hook in self._reset_hooks:
            hook()

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()
        verify = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True
        self.http = httpx.AsyncClient(verify=verify, follow_redirects=False)

    async def shutdown(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    def spawn(self, coro_factory: Callable[[], Any]) -> None:
        """Run a coroutine on the server loop from any thread, without waiting for it."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        def start() -> None:
            task = loop.create_task(coro_factory())
            _background.add(task)
            task.add_done_callback(_background.discard)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            start()
        else:
            loop.call_soon_threadsafe(start)


# Strong references to fire-and-forget tasks (the loop keeps only weak ones).
_background: set[asyncio.Task[Any]] = set()


def bind_sandbox(sandbox: Sandbox, handler: Any) -> Any:
    """A Starlette endpoint calling ``handler(sandbox, request)`` (sync or async)."""

    async def endpoint(request: Any) -> Any:
        result = handler(sandbox, request)
        return await result if hasattr(result, "__await__") else result

    return endpoint
