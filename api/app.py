"""The ASGI application.

``create_app(settings, runtime=..., open_runtime=...)``: with a ``runtime`` (what the
edge needs: ``api.dependencies.ApiDependencies``) the app uses it as is; otherwise the
lifespan opens one with ``open_runtime()`` and closes it on shutdown. The composition
root (``emailsync.asgi``) supplies either.

Routes: ``/graphql`` (GET, POST, WebSocket graphql-transport-ws, GraphiQL on GET
text/html), ``/healthz``, ``/readyz``, ``/metrics`` (api/health.py, api/observability.py),
``/webhooks/graph``, ``/webhooks/gmail``,
``/oauth/{provider}/callback``, ``/attachments/{id}`` (signed attachment downloads).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from api.attachment_routes import download_attachment
from api.auth import Authenticator
from api.dependencies import ApiDependencies
from api.graphiql import graphiql_assets_route
from api.graphql_http import GraphQLView
from api.health import DependencyChecks, readyz
from api.oauth_routes import oauth_callback
from api.observability import RequestObservability, metrics_endpoint
from api.origins import allowed_origins, cors_middleware
from api.pages import connected_page
from api.response_cache import ResponseCache
from api.schema import schema
from api.webhooks import gmail_webhook, graph_webhook
from sync_engine.settings import Settings


class _LazyGraphQL:
    """The GraphQL view needs the runtime, which the lifespan opens after routing is
    built: build the view on first use."""

    def __init__(self, app_state: Any) -> None:
        self._state = app_state
        self._view: GraphQLView | None = None
        self.response_cache: ResponseCache | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._view is None:
            rt: ApiDependencies = self._state.runtime
            self.response_cache = ResponseCache(rt) if rt.settings.response_cache else None
            self._view = GraphQLView(
                rt,
                Authenticator(rt),
                self.response_cache,
                schema=schema,
                graphql_ide="graphiql",
                subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
                # Strawberry's WebSocket origin check: the page's own host and these only.
                allowed_origins=allowed_origins(rt.settings),
                connection_init_wait_timeout=timedelta(seconds=10),
            )
        await self._view(scope, receive, send)

    async def close(self) -> None:
        if self.response_cache is not None:
            await self.response_cache.close()


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings, *, runtime: ApiDependencies | None = None,
               open_runtime: Callable[[], AbstractAsyncContextManager[ApiDependencies]] | None = None) -> Starlette:
    if runtime is None and open_runtime is None:
        raise ValueError("create_app needs a runtime or a way to open one")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            try:
                yield
            finally:
                await graphql.close()
                await dependency_checks.close()
            return
        assert open_runtime is not None
        async with open_runtime() as rt:
            app.state.runtime = rt
            try:
                yield
            finally:
                await graphql.close()
                await dependency_checks.close()

    edge_settings = runtime.settings if runtime is not None else settings
    # Outermost: request id, request metrics and the access line see every answer, CORS's too.
    app = Starlette(lifespan=lifespan, middleware=[Middleware(RequestObservability, settings=edge_settings),
                                                   cors_middleware(edge_settings)])
    graphql = _LazyGraphQL(app.state)
    dependency_checks = app.state.dependency_checks = DependencyChecks(edge_settings)
    app.router.routes.extend(
        [
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            graphiql_assets_route(),  # GraphiQL's vendored JS/CSS, so the IDE works offline
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),  # database (and Redis) answer: 200, else 503
            Route("/metrics", metrics_endpoint, methods=["GET"]),  # Prometheus
            Route("/attachments/{attachment_id:uuid}", download_attachment, methods=["GET"]),
            Route("/webhooks/graph", graph_webhook, methods=["POST"]),
            Route("/webhooks/gmail", gmail_webhook, methods=["POST"]),
            # GET for query-string answers (Google), POST for form_post answers (Microsoft).
            Route("/oauth/{provider}/callback", oauth_callback, methods=["GET", "POST"]),
            Route("/connected", connected_page, methods=["GET"]),  # where a sign-in ends without an app
        ]
    )
    if runtime is not None:
        app.state.runtime = runtime
    return app
