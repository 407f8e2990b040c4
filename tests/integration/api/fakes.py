"""Stand-ins for the lead's services, to test the API edge (routing, argument mapping,
status codes, userErrors) on its own. The services' own behaviour is tested with them."""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest


def patch_service(monkeypatch: pytest.MonkeyPatch, module_name: str, **attrs: Any) -> None:
    """Replace functions of a service module, or provide the module if it does not exist yet."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        module = types.ModuleType(module_name)
        monkeypatch.setitem(sys.modules, module_name, module)
    for name, value in attrs.items():
        monkeypatch.setattr(module, name, value, raising=False)


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
