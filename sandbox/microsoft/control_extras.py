"""Microsoft-specific controls, mounted under /_sandbox beside the common ones:
inspect Graph subscriptions, fire lifecycle events, expire subscriptions, and
read the webhook delivery log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox import ids
from sandbox.context import Sandbox
from sandbox.control import ControlError, _json
from sandbox.microsoft.notifier import LIFECYCLE_EVENTS
from sandbox.microsoft.state import ms_state


def control_routes(sandbox: Sandbox) -> list[tuple[str, Any, list[str]]]:
    def subscription(request: Request) -> Any:
        sub = ms_state(sandbox).subscriptions.items.get(request.path_params["subscription_id"])
        if sub is None:
            raise ControlError(404, f"no subscription {request.path_params['subscription_id']}")
        return sub

    async def list_subscriptions(request: Request) -> Response:
        subs = ms_state(sandbox).subscriptions.items.values()
        return JSONResponse([{**s.to_json(), "mailbox": s.mailbox, "active": s.active()} for s in subs])

    async def lifecycle(request: Request) -> Response:
        sub = subscription(request)
        event = (await _json(request)).get("event")
        if event not in LIFECYCLE_EVENTS:
            raise ControlError(400, f"event must be one of {sorted(LIFECYCLE_EVENTS)}")
        ms_state(sandbox).extra["notifier"].lifecycle(sub, event)
        return JSONResponse({"subscriptionId": sub.id, "event": event}, status_code=202)

    async def expire(request: Request) -> Response:
        sub = subscription(request)
        sub.expiration = ids.utcnow() - timedelta(seconds=1)
        return JSONResponse({**sub.to_json(), "active": False})

    async def notifications(request: Request) -> Response:
        rows = list(ms_state(sandbox).extra["notifier"].deliveries)
        wanted = request.query_params.get("subscriptionId")
        return JSONResponse([r for r in rows if not wanted or r.get("subscriptionId") == wanted])

    async def clear_notifications(request: Request) -> Response:
        ms_state(sandbox).extra["notifier"].deliveries.clear()
        return Response(status_code=204)

    one = "/_sandbox/subscriptions/{subscription_id}"
    return [
        ("/_sandbox/subscriptions", list_subscriptions, ["GET"]),
        (one + "/lifecycle", lifecycle, ["POST"]),
        (one + "/expire", expire, ["POST"]),
        ("/_sandbox/notifications", notifications, ["GET"]),
        ("/_sandbox/notifications", clear_notifications, ["DELETE"]),
    ]
