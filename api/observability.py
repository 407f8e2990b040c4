"""Request ids, request metrics, the access line, and the ``/metrics`` endpoint.

``RequestObservability`` is the outermost ASGI middleware of the app:
- it gives every request an id: the caller's ``X-Request-ID`` when it is sane (1-128
  characters of ``A-Za-z0-9._:-``, so it cannot forge a log line), else a new one; the id
  is echoed in the response's ``X-Request-ID`` and tags every log line written while the
  request is handled (``sync_engine.logging_setup.request_context``);
- it counts and times each HTTP request by method, *route template*
  (``/attachments/{attachment_id:uuid}``, never the path with its ids) and status;
- it writes one access line per request (``EMAILSYNC_ACCESS_LOG``), with the route
  template and path but never the query string (signed URLs carry their signature
  there) nor any header. The path is as uvicorn decoded it (``%0A`` is a newline by now):
  the log formatters escape it, so it cannot forge a line, and scrub any secret in it,
  in the message and in the structured ``path`` field alike. Probes (``/healthz``,
  ``/readyz``, ``/metrics``) are counted but not logged: they would drown the log.

Written as plain ASGI (not ``BaseHTTPMiddleware``): it adds a few microseconds to a
request and does not buffer streamed responses.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response

from api.health import DependencyChecks
from sync_engine.logging_setup import request_context
from sync_engine.metrics import REQUEST_SECONDS, REQUESTS, exposition
from sync_engine.settings import Settings

access_log = logging.getLogger("api.access")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
UNMATCHED = "unmatched"


def request_id_from(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def route_of(scope: dict[str, Any]) -> str:
    """The template of the route that handled the request (set by Starlette's router)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path or UNMATCHED


class RequestObservability:
    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.access_log = settings.access_log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            with request_context(request_id_from(scope)):
                await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = request_id_from(scope)
        status = 500  # unless a response starts: an exception escaped the app
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        with request_context(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                method = scope["method"] if scope["method"] in _METHODS else "other"
                route = route_of(scope)
                REQUESTS.labels(method, route, str(status)).inc()
                REQUEST_SECONDS.labels(route).observe(elapsed)
                if self.access_log and route not in _PROBES and access_log.isEnabledFor(logging.INFO):
                    ms = round(elapsed * 1000, 1)
                    access_log.info("%s %s %d %.1f ms", method, scope["path"], status, ms, extra={"fields": {
                        "method": method, "route": route, "path": scope["path"], "status": status, "duration_ms": ms}})


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format: this process's counters, then gauges read from the database
    and the queue (queue depth, sync lag), one reading shared by the scrapes of a few
    seconds (``api.health.READING_TTL``)."""
    checks: DependencyChecks = request.app.state.dependency_checks
    reading = await checks.reading(request.app.state.runtime.engine)
    return Response(exposition(reading), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def uvicorn_log_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's logging arguments for a process set up by ``configure_logging``: its
    loggers go through our handler (no config of its own), and its access log is off
    (the middleware writes the access line, with the request id and no query string)."""
    return {"log_config": None, "access_log": False, "log_level": settings.log_level.lower()}
