"""Google-specific controls, mounted under /_sandbox beside the common ones:
Pub/Sub push subscriptions, Gmail watches, the push delivery log, quota use."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.context import Sandbox
from sandbox.control import ControlError, _json
from sandbox.google.state import PushSubscription, google_state
from sandbox.google.views import now_ms

_TOPIC = re.compile(r"projects/([^/]+)/topics/[^/]+")


def control_routes(sandbox: Sandbox) -> list[tuple[str, Any, list[str]]]:
    state = google_state(sandbox)

    async def create_subscription(request: Request) -> Response:
        data = await _json(request)
        topic, endpoint = data.get("topic"), data.get("pushEndpoint")
        match = _TOPIC.fullmatch(str(topic or ""))
        if match is None or not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise ControlError(400, "need topic (projects/P/topics/T) and pushEndpoint (an http(s) URL)")
        name = str(data.get("name") or f"projects/{match.group(1)}/subscriptions/sandbox-{len(state.subscriptions) + 1}")
        subscription = PushSubscription(
            name=name,
            topic=str(topic),
            push_endpoint=endpoint,
            audience=str(data.get("audience") or ""),
            service_account=str(data.get("serviceAccountEmail") or state.config.gmail_push_service_account),
        )
        created = name not in state.subscriptions
        state.subscriptions[name] = subscription
        return JSONResponse(subscription.to_json(), status_code=201 if created else 200)

    async def list_subscriptions(request: Request) -> Response:
        return JSONResponse([s.to_json() for s in state.subscriptions.values()])

    async def delete_subscription(request: Request) -> Response:
        if state.subscriptions.pop(request.path_params["name"], None) is None:
            raise ControlError(404, f"no subscription {request.path_params['name']}")
        return Response(status_code=204)

    async def list_watches(request: Request) -> Response:
        return JSONResponse([w.to_json() for w in state.watches.items.values()])  # type: ignore[union-attr]

    async def expire_watch(request: Request) -> Response:
        watch = state.watches.get(request.path_params["address"])  # type: ignore[union-attr]
        if watch is None:
            raise ControlError(404, f"no watch on {request.path_params['address']}")
        watch.expiration_ms = now_ms() - 1
        return JSONResponse(watch.to_json())

    async def pushes(request: Request) -> Response:
        wanted = request.query_params.get("mailbox", "").lower()
        rows = list(state.pusher.deliveries)  # type: ignore[union-attr]
        return JSONResponse([r for r in rows if not wanted or r["mailbox"].lower() == wanted])

    async def outstanding_pushes(request: Request) -> Response:
        """How many mailbox changes still owe a push (waiting out the interval or being
        delivered): 0 means every push that is owed has been delivered or given up."""
        return JSONResponse({"outstanding": state.pusher.outstanding})  # type: ignore[union-attr]

    async def clear_pushes(request: Request) -> Response:
        state.pusher.deliveries.clear()  # type: ignore[union-attr]
        return Response(status_code=204)

    async def quota(request: Request) -> Response:
        address = request.path_params["address"]
        window = state.config.gmail_quota_window_seconds
        return JSONResponse({"mailbox": address, "used": state.quota.used(address, window),  # type: ignore[union-attr]
                             "limit": state.config.gmail_quota_per_minute, "windowSeconds": window})

    prefix = "/_sandbox/google"
    return [
        (prefix + "/pubsub/subscriptions", create_subscription, ["POST"]),
        (prefix + "/pubsub/subscriptions", list_subscriptions, ["GET"]),
        (prefix + "/pubsub/subscriptions/{name:path}", delete_subscription, ["DELETE"]),
        (prefix + "/watches", list_watches, ["GET"]),
        (prefix + "/watches/{address}/expire", expire_watch, ["POST"]),
        (prefix + "/pushes", pushes, ["GET"]),
        (prefix + "/pushes", clear_pushes, ["DELETE"]),
        (prefix + "/pushes/outstanding", outstanding_pushes, ["GET"]),
        (prefix + "/quota/{address}", quota, ["GET"]),
    ]
