"""Graph change-notification subscriptions: create (with the validation
handshake), renew, reauthorize, list, delete.

Before answering 201, Graph POSTs ``{notificationUrl}?validationToken=...``
(text/plain, empty body) and requires a 200 whose body is exactly the decoded
token within 10 s; the same for ``lifecycleNotificationUrl``. Message
subscriptions live at most 4,230 minutes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import ids
from sandbox.context import Sandbox
from sandbox.microsoft.graph_common import GraphCall, GraphError, graph_endpoint
from sandbox.microsoft.state import ms_state

CHANGE_TYPES = {"created", "updated", "deleted"}
_RESOURCE = re.compile(
    r"^/?(?:me|users/(?P<user>[^/]+))"
    r"(?:/mailfolders(?:\('(?P<folder1>[^']+)'\)|/(?P<folder2>[^/]+)))?/messages/?$",
    re.I,
)


@dataclass
class Subscription:
    id: str
    mailbox: str  # lower-cased address
    user_id: str
    tenant_id: str
    resource: str
    folder: str | None  # None: every message of the mailbox
    change_types: set[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    application_id: str
    latest_tls: str
    immutable_ids: bool
    created: datetime = field(default_factory=ids.utcnow)

    def active(self) -> bool:
        return ids.utcnow() < self.expiration

    def to_json(self, base: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if base:
            body["@odata.context"] = f"{base}/$metadata#subscriptions/$entity"
        body.update(
            {
                "id": self.id,
                "resource": self.resource,
                "applicationId": self.application_id,
                "changeType": ",".join(t for t in ("created", "updated", "deleted") if t in self.change_types),
                "clientState": self.client_state,
                "notificationUrl": self.notification_url,
                "lifecycleNotificationUrl": self.lifecycle_url,
                "expirationDateTime": ids.iso_z_precise(self.expiration),
                "creatorId": self.user_id,
                "latestSupportedTlsVersion": self.latest_tls,
                "notificationContentType": "application/json",
                "includeResourceData": False,
                "encryptionCertificate": None,
                "encryptionCertificateId": None,
                "notificationQueryOptions": None,
                "notificationUrlAppId": None,
            }
        )
        return body


class SubscriptionRegistry:
    def __init__(self) -> None:
        self.items: dict[str, Subscription] = {}

    def reset(self) -> None:
        self.items.clear()

    def active_for(self, mailbox: str) -> list[Subscription]:
        return [s for s in self.items.values() if s.mailbox == mailbox.lower() and s.active()]

    def owned(self, call: GraphCall, subscription_id: str) -> Subscription:
        sub = self.items.get(subscription_id)
        if sub is None or sub.mailbox != call.mailbox.address.lower() or not sub.active():
            raise GraphError(404, "ResourceNotFound", f"The object '{subscription_id}' was not found.")
        return sub


def _expiration(call: GraphCall, value: Any) -> datetime:
    if not isinstance(value, str):
        raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
    try:
        moment = ids.parse_iso(value)
    except ValueError:
        raise GraphError(400, "InvalidRequest", f"Invalid expirationDateTime '{value}'.") from None
    now = ids.utcnow()
    limit = call.sandbox.config.max_subscription_minutes
    if moment <= now:
        raise GraphError(400, "InvalidRequest", "Subscription expiration must be in the future.")
    if moment > now + timedelta(minutes=limit):
        raise GraphError(400, "InvalidRequest", f"Subscription expiration can only be {limit} minutes in the future.")
    return moment


async def validate_endpoint(sandbox: Sandbox, url: str) -> str | None:
    """Run the validationToken handshake; returns a failure reason or None."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {ids.new_guid()}"
    target = url + ("&" if "?" in url else "?") + "validationToken=" + quote(token, safe="")
    assert sandbox.http is not None
    started = time.perf_counter()
    record: dict[str, Any] = {"kind": "validation", "url": url, "time": ids.iso_z_precise(ids.utcnow())}
    notifier = ms_state(sandbox).extra["notifier"]
    try:
        response = await sandbox.http.post(
            target, content=b"", headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=sandbox.config.validation_timeout,
        )
    except httpx.HTTPError as exc:
        notifier.log({**record, "status": None, "ok": False, "error": type(exc).__name__})
        return f"Notification endpoint could not be reached ({type(exc).__name__})."
    ok = response.status_code == 200 and response.text == token
    notifier.log({**record, "status": response.status_code, "ok": ok, "durationMs": round((time.perf_counter() - started) * 1000, 3)})
    if response.status_code != 200:
        return f"Notification endpoint must respond with 200 OK to validation request (got {response.status_code})."
    if response.text != token:
        return "Response must exactly match validationToken query parameter."
    return None


def _check_url(call: GraphCall, url: Any, name: str) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://", url, re.I):
        raise GraphError(400, "InvalidRequest", f"{name} must be an absolute URL.")
    if url.lower().startswith("http://") and not call.sandbox.config.webhook_allow_http:
        raise GraphError(400, "InvalidRequest", f"The {name} must use HTTPS.")
    return url


async def create(call: GraphCall) -> Response:
    data = await call.json()
    resource = str(data.get("resource") or "")
    match = _RESOURCE.match(resource)
    if not match:
        raise GraphError(400, "InvalidRequest", f"Resource '{resource}' is not supported for subscriptions.")
    user = match.group("user")
    mailbox = call.mailbox
    if user and user.lower() not in (mailbox.user_id.lower(), mailbox.address.lower()):
        raise GraphError(403, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied.]")
    folder_ref = match.group("folder1") or match.group("folder2")
    folder = mailbox.folder_name(folder_ref) if folder_ref else None
    if folder_ref and folder is None:
        raise GraphError(404, "ExtensionError", f"The folder '{folder_ref}' was not found.")
    change_types = {t.strip().lower() for t in str(data.get("changeType") or "").split(",") if t.strip()}
    if not change_types or not change_types <= CHANGE_TYPES:
        raise GraphError(400, "InvalidRequest", f"Invalid changeType '{data.get('changeType')}'.")
    client_state = data.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
        raise GraphError(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
    notification_url = _check_url(call, data.get("notificationUrl"), "notificationUrl")
    lifecycle_url = data.get("lifecycleNotificationUrl")
    if lifecycle_url is not None:
        lifecycle_url = _check_url(call, lifecycle_url, "lifecycleNotificationUrl")
    expiration = _expiration(call, data.get("expirationDateTime"))
    for url in dict.fromkeys(u for u in (notification_url, lifecycle_url) if u):
        failure = await validate_endpoint(call.sandbox, url)
        if failure:
            raise GraphError(400, "ValidationError", f"Subscription validation request failed. {failure}")
    sub = Subscription(
        id=ids.new_guid(),
        mailbox=mailbox.address.lower(),
        user_id=mailbox.user_id,
        tenant_id=mailbox.tenant_id,
        resource=resource,
        folder=folder,
        change_types=change_types,
        notification_url=notification_url,
        lifecycle_url=lifecycle_url,
        client_state=client_state,
        expiration=expiration,
        application_id=call.token.client_id,
        latest_tls=str(data.get("latestSupportedTlsVersion") or "v1_2"),
        immutable_ids=call.immutable_ids,
    )
    ms_state(call.sandbox).subscriptions.items[sub.id] = sub
    return JSONResponse(sub.to_json(call.base), status_code=201)


async def list_all(call: GraphCall) -> Response:
    subs = ms_state(call.sandbox).subscriptions.active_for(call.mailbox.address)
    return JSONResponse({"@odata.context": f"{call.base}/$metadata#subscriptions", "value": [s.to_json() for s in subs]})


async def get_one(call: GraphCall) -> Response:
    sub = ms_state(call.sandbox).subscriptions.owned(call, call.request.path_params["subscription_id"])
    return JSONResponse(sub.to_json(call.base))


async def renew(call: GraphCall) -> Response:
    sub = ms_state(call.sandbox).subscriptions.owned(call, call.request.path_params["subscription_id"])
    sub.expiration = _expiration(call, (await call.json()).get("expirationDateTime"))
    return JSONResponse(sub.to_json(call.base))


async def reauthorize(call: GraphCall) -> Response:
    ms_state(call.sandbox).subscriptions.owned(call, call.request.path_params["subscription_id"])
    return Response(status_code=200)


async def delete(call: GraphCall) -> Response:
    registry = ms_state(call.sandbox).subscriptions
    sub = registry.owned(call, call.request.path_params["subscription_id"])
    registry.items.pop(sub.id, None)
    return Response(status_code=204)


def routes(sandbox: Sandbox) -> list[Route]:
    def r(path: str, handler: Any, method: str) -> Route:
        return Route("/v1.0" + path, graph_endpoint(sandbox, handler), methods=[method])

    one = "/subscriptions/{subscription_id}"
    return [
        r("/subscriptions", create, "POST"),
        r("/subscriptions", list_all, "GET"),
        r(one, get_one, "GET"),
        r(one, renew, "PATCH"),
        r(one, delete, "DELETE"),
        r(one + "/reauthorize", reauthorize, "POST"),
    ]
