"""JSON batching: ``POST /v1.0/$batch`` with up to 20 requests.

Each inner request is dispatched through the whole sandbox app in-process, so
faults, throttling and the request log apply to it as to any other request.
Requests run one after another in the given order, which also satisfies any
``dependsOn`` (a request whose dependency failed gets 424, as Graph answers).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.context import Sandbox
from sandbox.microsoft.graph_common import GraphCall, GraphError, error_body, graph_endpoint

MAX_REQUESTS = 20
_FORWARDED = ("authorization", "prefer", "client-request-id")


def _check(requests: Any) -> list[dict[str, Any]]:
    if not isinstance(requests, list) or not requests:
        raise GraphError(400, "BadRequest", "Invalid batch payload: 'requests' must be a non-empty array.")
    if len(requests) > MAX_REQUESTS:
        raise GraphError(400, "BadRequest", f"The number of batch requests exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for entry in requests:
        if not isinstance(entry, dict) or not entry.get("id") or not entry.get("method") or not entry.get("url"):
            raise GraphError(400, "BadRequest", "Each batch request needs id, method and url.")
        if str(entry["id"]) in seen:
            raise GraphError(400, "BadRequest", f"Duplicate batch request id '{entry['id']}'.")
        seen.add(str(entry["id"]))
    return requests


def _inner_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return base64.b64encode(response.content).decode("ascii")


async def batch(call: GraphCall) -> Response:
    requests = _check((await call.json()).get("requests"))
    app = call.sandbox.extensions["app"]
    outer_headers = {k: v for k, v in call.request.headers.items() if k.lower() in _FORWARDED}
    status_by_id: dict[str, int] = {}
    responses = []
    transport = httpx.ASGITransport(app=app)
    base = str(call.request.base_url)
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        for entry in requests:
            request_id = str(entry["id"])
            depends = [str(d) for d in entry.get("dependsOn") or []]
            if any(not 200 <= status_by_id.get(d, 0) < 300 for d in depends):
                status_by_id[request_id] = 424
                responses.append({"id": request_id, "status": 424, "body": error_body("FailedDependency", "A dependent request failed.")})
                continue
            headers = {**outer_headers, **{str(k): str(v) for k, v in (entry.get("headers") or {}).items()}}
            content = None
            if entry.get("body") is not None:
                body = entry["body"]
                content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                headers.setdefault("Content-Type", "application/json")
            url = "/v1.0/" + str(entry["url"]).lstrip("/")
            inner = await client.request(str(entry["method"]).upper(), url, content=content, headers=headers)
            status_by_id[request_id] = inner.status_code
            shown = {k: v for k, v in inner.headers.items() if k.lower() in ("content-type", "retry-after", "location", "preference-applied")}
            responses.append({"id": request_id, "status": inner.status_code, "headers": shown, "body": _inner_body(inner)})
    return JSONResponse({"responses": responses})


def routes(sandbox: Sandbox) -> list[Route]:
    return [Route("/v1.0/$batch", graph_endpoint(sandbox, batch), methods=["POST"])]
