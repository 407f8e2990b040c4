"""Assembly of the sandbox's Starlette app: provider routes, control API,
request log and faults in front of every provider endpoint, and the SMTP
catcher's listeners started and stopped with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import control, google, microsoft, smtp
from sandbox.context import Sandbox
from sandbox.google.control_extras import control_routes as google_controls
from sandbox.microsoft.control_extras import control_routes as microsoft_controls
from sandbox.microsoft.graph_common import GraphPathMiddleware, error_body
from sandbox.traffic import TrafficMiddleware


async def _graph_unknown_segment(request: Request) -> Response:
    segment = request.path_params["rest"].split("/")[-1]
    return JSONResponse(error_body("BadRequest", f"Resource not found for the segment '{segment}'."), status_code=400)


def build_app(sandbox: Sandbox) -> Starlette:
    # Explicit wiring: each provider package installs its state and returns its routes.
    provider_routes = [*microsoft.install(sandbox), *google.install(sandbox)]
    smtp_controls = smtp.install(sandbox)
    control_routes = control.routes(sandbox, extra=[*microsoft_controls(sandbox), *google_controls(sandbox), *smtp_controls])
    catcher = smtp.smtp_catcher(sandbox)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sandbox.startup()
        # The SMTP listeners share the app's event loop (and its state, without locks).
        await catcher.start()
        try:
            yield
        finally:
            await catcher.stop()
            await sandbox.shutdown()

    app = Starlette(
        routes=[*control_routes, *provider_routes, Route("/v1.0/{rest:path}", _graph_unknown_segment, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])],
        middleware=[
            Middleware(TrafficMiddleware, faults=sandbox.faults, log=sandbox.requests),
            Middleware(GraphPathMiddleware),
        ],
        lifespan=lifespan,
    )
    sandbox.extensions["app"] = app  # $batch dispatches inner requests through it
    return app
