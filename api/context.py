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
from api.errors import Forbidden, Unauthenticated
from sync_engine.runtime import Runtime


@dataclass(eq=False)
class Context:
    runtime: Runtime
    authenticator: Authenticator
    request: Request | WebSocket
    response: Response | WebSocket | None
    viewer: Viewer | None
    # Set by strawberry from the graphql-transport-ws ``connection_init`` payload.
    connection_params: dict[str, Any] | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

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

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            viewer = self.require_member()
            assert viewer.sub_account_id is not None
            self._loaders = Loaders(self.runtime, viewer.sub_account_id, cache=not self.is_websocket)
        return self._loaders


Info = StrawberryInfo[Context, None]


async def build_context(
    runtime: Runtime,
    authenticator: Authenticator,
    request: Request | WebSocket,
    response: Response | WebSocket | None,
) -> Context:
    """Raises ``AuthenticationFailed`` for bad HTTP credentials (the view answers 401)."""
    viewer = None if isinstance(request, WebSocket) else await authenticator.from_headers(request.headers)
    return Context(runtime=runtime, authenticator=authenticator, request=request, response=response, viewer=viewer)
