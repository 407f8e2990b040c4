"""The SMTP relay adapter against the sandbox's SMTP catcher, over real sockets on
loopback with the sandbox's CA. The catcher's control API (``/_sandbox/smtp``)
injects faults and shows exactly what arrived."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from sync_engine.domain import SmtpRelayConfig, SmtpTlsMode
from sync_engine.providers.smtp import SmtpRelay


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture()
async def catcher(sandbox: SandboxServer) -> AsyncIterator[Catcher]:
    # Async: waiting for a message must not block the loop the relay sends from.
    async with httpx.AsyncClient(base_url=f"{sandbox.base_url}/_sandbox", verify=sandbox.ssl_context(), timeout=30) as client:
        assert (await client.post("/reset")).status_code == 204
        yield Catcher(client)


class Catcher:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def messages(self, wait_for: int = 0) -> list[dict[str, Any]]:
        """What the catcher holds, once it holds ``wait_for`` messages (it waits up to 10 s)."""
        response = await self.client.get("/smtp/messages", params={"wait_for": wait_for, "timeout": 10})
        assert response.status_code == 200, response.text
        return response.json()

    async def fault(self, **spec: Any) -> None:
        assert (await self.client.post("/smtp/faults", json=spec)).status_code == 200

    async def configure(self, **settings: Any) -> None:
        assert (await self.client.patch("/config", json=settings)).status_code == 200


@pytest.fixture()
def relay(sandbox: SandboxServer) -> Callable[..., SmtpRelay]:
    """A relay to the catcher: STARTTLS on its plain port by default, the catcher's credentials."""

    def make(tls_mode: SmtpTlsMode = SmtpTlsMode.STARTTLS, *, port: int | None = None, timeout: float = 10.0,
             **overrides: Any) -> SmtpRelay:
        """``overrides``: ``username``/``password`` (None: no AUTH) and ``ca_bundle`` (None: system roots)."""
        username, password = sandbox.smtp_credentials
        config = SmtpRelayConfig(
            host="127.0.0.1",
            port=port or (sandbox.smtps_port if tls_mode is SmtpTlsMode.IMPLICIT else sandbox.smtp_port),
            tls_mode=tls_mode,
            username=overrides.get("username", username),
            password=overrides.get("password", password),
            from_email="olivia@demo-realty.example",
            from_name="Olivia Agent",
        )
        return SmtpRelay(config, ca_bundle=overrides.get("ca_bundle", sandbox.ca_file), timeout=timeout)

    return make
