"""Stand-ins for services, to test the API edge (routing, argument mapping, status codes,
userErrors) on its own. The services' own behaviour is tested with them. Fakes go in
the way production wiring does: as members of the runtime's ``Services``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest


class _Overridden:
    """A service whose named methods are replaced; everything else is the real one."""

    def __init__(self, real: Any, methods: dict[str, Any]) -> None:
        self._real = real
        self.__dict__.update(methods)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def patch_service(monkeypatch: pytest.MonkeyPatch, api: Any, service: str, **methods: Any) -> None:
    """Replace methods of one of ``api.rt.services`` (e.g. ``"connections"``) for this test."""
    services = api.rt.services
    fake = _Overridden(getattr(services, service), methods)
    monkeypatch.setattr(api.rt, "services", dataclasses.replace(services, **{service: fake}))


@dataclass
class Calls:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def recorder(self, name: str, result: Any = None, error: BaseException | None = None) -> Any:
        async def fake(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if error is not None:
                raise error
            return result(*args, **kwargs) if callable(result) else result

        return fake
