"""The ASGI application with this process's runtime (``emailsync serve``, ``emailsync dev``,
or any ASGI server: ``uvicorn --factory emailsync.asgi:create_app``)."""

from __future__ import annotations

from starlette.applications import Starlette

from api.app import create_app as create_api_app
from emailsync.runtime import Runtime, open_runtime
from sync_engine.settings import Settings, get_settings


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    """The API; it opens its own runtime in its lifespan unless given one (tests)."""
    chosen = runtime.settings if runtime is not None else (settings or get_settings())
    return create_api_app(chosen, runtime=runtime, open_runtime=lambda: open_runtime(chosen))
