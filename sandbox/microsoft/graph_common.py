"""What every Graph endpoint shares: path canonicalisation, authentication,
throttling, Prefer headers, and Graph's error body.

Graph resource paths are case-insensitive and accept both ``mailFolders/x``
and ``mailFolders('x')``; ``users/{id}/...`` addresses the signed-in user's own
mailbox with a delegated token. A small ASGI middleware rewrites all of these
to one canonical path before routing, so the routes stay simple.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import ids
from sandbox.context import Sandbox
from sandbox.microsoft.state import ms_state
from sandbox.store import Mailbox, Message
from sandbox.tokens import AccessToken

GRAPH_PREFIX = "/v1.0"
_KEYWORDS = {
    k.lower(): k
    for k in (
        "me", "users", "messages", "mailFolders", "delta", "sendMail", "createReply", "createReplyAll",
        "reply", "replyAll", "send", "attachments", "move", "subscriptions", "reauthorize", "$value",
        "$batch", "childFolders",
    )
}
_CALL_SEGMENT = re.compile(r"^([A-Za-z$]+)\('([^']*)'\)$")


def canonical_graph_path(path: str) -> tuple[str, str | None]:
    """Rewrite a /v1.0 path to its canonical spelling; returns (path, users/{id} ref)."""
    segments: list[str] = []
    for segment in path.split("/"):
        call = _CALL_SEGMENT.match(segment)
        if call:
            name, argument = call.groups()
            segments += [_KEYWORDS.get(name.lower(), name), argument]
        else:
            segments.append(_KEYWORDS.get(segment.lower(), segment))
    segments = [s for i, s in enumerate(segments) if s or i == 0]  # drop "//" and leading "/"
    user_ref = None
    # segments: ["", "v1.0", "users", "{id}", ...]
    if len(segments) >= 4 and segments[2] == "users":
        user_ref = segments[3]
        segments = [*segments[:2], "me", *segments[4:]]
    # me/mailFolders/{f}/messages/{id}/... addresses the message itself.
    if len(segments) >= 7 and segments[2:4] == ["me", "mailFolders"] and segments[5] == "messages" and segments[6] != "delta":
        segments = [*segments[:3], *segments[5:]]
    return "/".join(segments), user_ref


class GraphPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(GRAPH_PREFIX + "/"):
            path, user_ref = canonical_graph_path(scope["path"].rstrip("/"))
            scope = dict(scope, path=path, raw_path=path.encode())
            scope.setdefault("state", {})["graph.user_ref"] = user_ref
        await self.app(scope, receive, send)


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    request_id = request_id or ids.new_guid()
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": ids.utcnow().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }


def error_response(err: GraphError) -> JSONResponse:
    return JSONResponse(error_body(err.code, err.message), status_code=err.status, headers=err.headers)


def fault_body(status: int) -> dict[str, Any]:
    """The body Graph sends with a given status, for injected faults."""
    codes = {
        429: ("TooManyRequests", "Please retry again later."),
        503: ("ServiceUnavailable", "Service Unavailable, please retry."),
        504: ("GatewayTimeout", "The gateway did not receive a timely response."),
        500: ("InternalServerError", "An internal server error occurred."),
        401: ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
        404: ("ErrorItemNotFound", "The specified object was not found in the store."),
        410: ("SyncStateNotFound", "The sync state is not found, or has expired. Please start a new sync."),
    }
    code, message = codes.get(status, (f"Http{status}", "Injected fault."))
    body = error_body(code, message)
    if status == 429:
        body["error"]["innerError"].update({"code": "429", "message": "Please retry after", "status": "429"})
    return body


_PREFER_ITEM = re.compile(r'\s*([\w.\-]+)\s*(?:=\s*("(?:[^"]*)"|[^,;]*))?')


def parse_prefer(headers: list[str]) -> dict[str, str]:
    """Prefer headers, possibly repeated or comma-joined: name -> value (quotes stripped)."""
    prefs: dict[str, str] = {}
    for header in headers:
        for part in header.split(","):
            match = _PREFER_ITEM.match(part)
            if match and match.group(1):
                prefs[match.group(1).lower()] = (match.group(2) or "").strip().strip('"')
    return prefs


@dataclass
class GraphCall:
    """One authenticated Graph request."""

    sandbox: Sandbox
    request: Request
    mailbox: Mailbox
    token: AccessToken
    prefs: dict[str, str]
    applied: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return str(self.request.base_url).rstrip("/") + GRAPH_PREFIX

    @property
    def immutable_ids(self) -> bool:
        wanted = self.prefs.get("idtype", "").lower() == "immutableid"
        if wanted and 'IdType="ImmutableId"' not in self.applied:
            self.applied.append('IdType="ImmutableId"')
        return wanted

    def message_id(self, message: Message) -> str:
        return message.id if self.immutable_ids else message.rest_id

    def page_size(self, default: int) -> int:
        raw = self.prefs.get("odata.maxpagesize")
        if raw and raw.isdigit() and int(raw) > 0:
            self.applied.append(f"odata.maxpagesize={int(raw)}")
            return int(raw)
        return default

    def find_message(self, message_ref: str) -> Message:
        message = self.mailbox.get(message_ref)
        if message is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return message

    async def json(self) -> dict[str, Any]:
        raw = await self.request.body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise GraphError(400, "BadRequest", f"Unable to read JSON request payload: {exc}") from None
        if not isinstance(data, dict):
            raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
        return data

    def select(self) -> list[str] | None:
        raw = self.request.query_params.get("$select")
        return [s.strip() for s in raw.split(",") if s.strip()] if raw else None


def _unauthorized(message: str) -> GraphError:
    return GraphError(
        401, "InvalidAuthenticationToken", message,
        {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'},
    )


def authenticate(sandbox: Sandbox, request: Request) -> tuple[Mailbox, AccessToken]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized("Access token is empty.")
    token = sandbox.tokens.access.get(value.strip())
    if token is None:
        raise _unauthorized("IDX14100: JWT is not well formed, there are no dots (.).")
    if token.revoked:
        raise _unauthorized("Access token has expired or is not yet valid.")
    if token.expired():
        raise _unauthorized("Lifetime validation failed, the token is expired.")
    mailbox = sandbox.store.mailbox(token.mailbox)
    if mailbox is None or mailbox.revoked or mailbox.provider != "outlook":
        raise _unauthorized("Access token has expired or is not yet valid.")
    user_ref = request.scope.get("state", {}).get("graph.user_ref")
    if user_ref and user_ref.lower() not in (mailbox.user_id.lower(), mailbox.address.lower()):
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    return mailbox, token


Handler = Callable[[GraphCall], Awaitable[Response]]


def graph_endpoint(sandbox: Sandbox, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with authentication, throttling, latency and error mapping."""

    async def endpoint(request: Request) -> Response:
        try:
            mailbox, token = authenticate(sandbox, request)
        except GraphError as err:
            return error_response(err)
        request.scope.setdefault("state", {})["sandbox.mailbox"] = mailbox.address
        config, throttle = sandbox.config, ms_state(sandbox).throttle
        rejection = throttle.acquire(mailbox.address, config.graph_max_concurrency, config.graph_rate_limit)
        if rejection is not None:
            body = fault_body(429)
            body["error"]["code"], body["error"]["message"] = rejection.code, rejection.message
            return JSONResponse(body, status_code=429, headers={"Retry-After": f"{config.throttle_retry_after:g}"})
        try:
            if config.graph_latency_ms:
                await asyncio.sleep(config.graph_latency_ms / 1000)
            call = GraphCall(sandbox, request, mailbox, token, parse_prefer(request.headers.getlist("prefer")))
            try:
                response = await handler(call)
            except GraphError as err:
                response = error_response(err)
            if call.applied:
                response.headers["Preference-Applied"] = ", ".join(dict.fromkeys(call.applied))
            request_id = request.headers.get("client-request-id") or ids.new_guid()
            response.headers["request-id"] = request_id
            response.headers["client-request-id"] = request_id
            return response
        finally:
            throttle.release(mailbox.address)

    return endpoint
