"""The typed GraphQL context and its factory.

HTTP requests are authenticated before execution (bad credentials never reach a
resolver); WebSocket connections authenticate in ``connection_init``, so their
context starts anonymous and gets its viewer in ``on_ws_connect``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from api.auth import Authenticator, Viewer, ViewerKind
from api.dataloaders import Loaders
from api.dependencies import ApiDependencies
from api.errors import Forbidden, Unauthenticated
from api.response_cache import ResponseCache
from sync_engine.services.facades import Services


@dataclass(eq=False)
class Context:
    runtime: ApiDependencies
    authenticator: Authenticator
    request: Request | WebSocket
    response: Response | WebSocket | None
    viewer: Viewer | None
    response_cache: ResponseCache | None = None
    # Set by strawberry from the graphql-transport-ws ``connection_init`` payload.
    connection_params: dict[str, Any] | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def services(self) -> Services:
        """The service facades resolvers call (a test may hand fakes through the runtime)."""
        return self.runtime.services

    @property
    def is_websocket(self) -> bool:
        return isinstance(self.request, WebSocket)

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise Unauthenticated()
        return self.viewer

    def require_member(self) -> Viewer:
        """A caller acting inside one sub-account (a user, or a sub-account API key)."""
        viewer = self.require_viewer()
        if viewer.sub_account_id is None:
            raise Forbidden("this needs a user token or a sub-account API key")
        return viewer

    def require_user(self) -> Viewer:
        viewer = self.require_member()
        if viewer.kind is not ViewerKind.USER or viewer.user_id is None:
            raise Forbidden("this needs a user token")
        return viewer

    def shared_reads_changed(self) -> None:
        """Called by mutations that change what ``threads``/``contacts`` show, so this
        process's cached pages are dropped now rather than at the next event."""
        if self.response_cache is not None and self.viewer is not None:
            self.response_cache.invalidate(self.viewer.sub_account_id)

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            viewer = self.require_member()
            assert viewer.sub_account_id is not None
            self._loaders = Loaders(self.runtime, viewer.sub_account_id, cache=not self.is_websocket)
        return self._loaders


Info = StrawberryInfo[Context, None]


async def build_context(
    runtime: ApiDependencies,
    authenticator: Authenticator,
    request: Request | WebSocket,
    response: Response | WebSocket | None,
    response_cache: ResponseCache | None = None,
    viewer: Viewer | None = None,
) -> Context:
    """``viewer``: when the caller was already authenticated. Raises ``AuthenticationFailed``
    for bad HTTP credentials (the view answers 401)."""
    if isinstance(request, WebSocket):
        # Subscriptions always load fresh rows: no shared cache, no cached loaders.
        return Context(runtime=runtime, authenticator=authenticator, request=request, response=response, viewer=None)
    if viewer is None:
        viewer = await authenticator.from_headers(request.headers)
    return Context(
        runtime=runtime,
        authenticator=authenticator,
        request=request,
        response=response,
        viewer=viewer,
        response_cache=response_cache,
    )
