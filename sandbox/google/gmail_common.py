"""What every Gmail API endpoint shares: Google's error body, bearer
authentication, scope checks, the per-user quota, simulated latency and the
``fields`` partial-response parameter.

Routes live under ``/gmail/v1/users/{user}/...``; ``{user}`` is ``me`` or the
signed-in address (anything else is a delegation Google refuses).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox import ids
from sandbox.context import Sandbox
from sandbox.google.quota import COSTS
from sandbox.google.state import GoogleState, google_state
from sandbox.store import Mailbox, Message
from sandbox.tokens import AccessToken

GMAIL_PREFIX = "/gmail/v1/users/{user}"
JSON_TYPE = "application/json; charset=UTF-8"
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
_SEE = "See https://developers.google.com/identity/sign-in/web/devconsole-project."

# Scopes that allow each kind of call (https://developers.google.com/gmail/api/auth/scopes).
FULL = "https://mail.google.com/"
MODIFY = "https://www.googleapis.com/auth/gmail.modify"
READONLY = "https://www.googleapis.com/auth/gmail.readonly"
METADATA = "https://www.googleapis.com/auth/gmail.metadata"
COMPOSE = "https://www.googleapis.com/auth/gmail.compose"
SEND = "https://www.googleapis.com/auth/gmail.send"
_READ_SCOPES = {FULL, MODIFY, READONLY, METADATA}
SCOPES_FOR = {
    **dict.fromkeys(("getProfile", "history.list", "messages.list", "messages.get", "messages.attachments.get", "threads.get", "threads.list", "watch", "stop", "labels.list", "labels.get"), _READ_SCOPES),
    **{m: {FULL, MODIFY} for m in ("messages.modify", "messages.trash", "messages.untrash", "messages.batchModify")},
    "messages.send": {FULL, MODIFY, COMPOSE, SEND},
    "messages.delete": {FULL},
    "messages.batchDelete": {FULL},
}


class GmailError(Exception):
    """A Google API error; ``detail`` is the per-error message when it differs from the top one."""

    def __init__(self, status: int, message: str, reason: str, *, domain: str = "global", detail: str | None = None,
                 headers: dict[str, str] | None = None, **extra: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason, self.domain = status, message, reason, domain
        self.detail, self.headers, self.extra = detail, headers or {}, extra


def error_body(status: int, message: str, reason: str, domain: str = "global", detail: str | None = None,
               **extra: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": detail or message, "domain": domain, "reason": reason, **extra}],
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }


def error_response(err: GmailError) -> JSONResponse:
    body = error_body(err.status, err.message, err.reason, err.domain, err.detail, **err.extra)
    return JSONResponse(body, status_code=err.status, headers=err.headers, media_type=JSON_TYPE)


def not_found() -> GmailError:
    return GmailError(404, "Requested entity was not found.", "notFound")


def invalid(message: str) -> GmailError:
    return GmailError(400, message, "invalidArgument")


def rate_limited(retry_after: float) -> GmailError:
    until = ids.utcnow() + timedelta(seconds=retry_after)
    stamp = until.strftime("%Y-%m-%dT%H:%M:%S.") + f"{until.microsecond // 1000:03d}Z"
    # Google's text has two spaces after the first sentence.
    return GmailError(429, f"User-rate limit exceeded.  Retry after {stamp}", "rateLimitExceeded",
                      domain="usageLimits", headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


def fault_body(status: int) -> dict[str, Any]:
    """The body Gmail sends with a given status, for injected faults."""
    shapes = {
        400: ("Precondition check failed.", "failedPrecondition", "global"),
        401: ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
              f"other valid authentication credential. {_SEE}", "authError", "global"),
        403: ("The caller does not have permission", "forbidden", "global"),
        404: ("Requested entity was not found.", "notFound", "global"),
        429: ("User-rate limit exceeded.  Retry after " + ids.iso_z(ids.utcnow() + timedelta(seconds=1)),
              "rateLimitExceeded", "usageLimits"),
        500: ("Internal error encountered.", "backendError", "global"),
        503: ("The service is currently unavailable.", "backendError", "global"),
    }
    message, reason, domain = shapes.get(status, ("Injected fault.", "backendError", "global"))
    return error_body(status, message, reason, domain)


def _unauthenticated(missing: bool) -> GmailError:
    headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"' + ("" if missing else ', error="invalid_token"')}
    if missing:
        message = ("Request is missing required authentication credential. Expected OAuth 2 access token, login "
                   f"cookie or other valid authentication credential. {_SEE}")
        return GmailError(401, message, "required", detail="Login Required.", headers=headers,
                          location="Authorization", locationType="header")
    message = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
               f"other valid authentication credential. {_SEE}")
    return GmailError(401, message, "authError", detail="Invalid Credentials", headers=headers,
                      location="Authorization", locationType="header")


def authenticate(sandbox: Sandbox, request: Request) -> tuple[Mailbox, AccessToken]:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthenticated(missing=True)
    token = sandbox.tokens.access.get(value.strip())
    if token is None or token.expired():
        raise _unauthenticated(missing=False)
    mailbox = sandbox.store.mailbox(token.mailbox)
    if mailbox is None or mailbox.revoked or mailbox.provider != "gmail":
        raise _unauthenticated(missing=False)
    user = request.path_params.get("user", "me")
    if user != "me" and user.lower() != mailbox.address.lower():
        raise GmailError(403, f"Delegation denied for {mailbox.address}", "forbidden")
    return mailbox, token


@dataclass
class GmailCall:
    """One authenticated Gmail request."""

    sandbox: Sandbox
    request: Request
    mailbox: Mailbox
    token: AccessToken

    @property
    def state(self) -> GoogleState:
        return google_state(self.sandbox)

    @property
    def metadata_only(self) -> bool:
        return not (set(self.token.scopes) & {FULL, MODIFY, READONLY})

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.request.query_params.get(name, default)

    def int_param(self, name: str, default: int, maximum: int) -> int:
        raw = self.request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isdigit():
            raise invalid(f"Invalid value '{raw}'. Values must match the following regular expression: '[0-9]+'")
        return max(1, min(int(raw), maximum))

    def message(self, message_id: str) -> Message:
        if not re.fullmatch(r"[0-9a-fA-F]{1,16}", message_id):
            raise invalid("Invalid id value")
        message = self.mailbox.messages.get(message_id.lower())
        if message is None:
            raise not_found()
        return message

    async def json(self) -> dict[str, Any]:
        raw = await self.request.body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise invalid("Invalid JSON payload received.") from None
        if not isinstance(data, dict):
            raise invalid("Invalid JSON payload received. Expected an object.")
        return data


Handler = Callable[[GmailCall], Awaitable[Response]]


def gmail_endpoint(sandbox: Sandbox, method: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with authentication, scopes, quota, latency, errors and ``fields``."""

    async def endpoint(request: Request) -> Response:
        state = google_state(sandbox)
        scope_state = request.scope.setdefault("state", {})
        try:
            mailbox, token = authenticate(sandbox, request)
            scope_state["sandbox.mailbox"] = mailbox.address
            if not set(token.scopes) & SCOPES_FOR[method]:
                raise GmailError(403, "Request had insufficient authentication scopes.", "insufficientPermissions",
                                 headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope"'})
            units = COSTS.get(method, 1)
            wait = state.quota.charge(mailbox.address, units, state.config.gmail_quota_per_minute,  # type: ignore[union-attr]
                                      state.config.gmail_quota_window_seconds)
            if wait is not None:
                raise rate_limited(wait)
            scope_state["sandbox.quota_units"] = units
            if state.config.gmail_latency_ms:
                await asyncio.sleep(state.config.gmail_latency_ms / 1000)
            response = await handler(GmailCall(sandbox, request, mailbox, token))
        except GmailError as err:
            return error_response(err)
        return _partial(response, request.query_params.get("fields"))

    return endpoint


def gmail_json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=JSON_TYPE)


# -- partial responses (?fields=) ----------------------------------------------

_FIELD_TOKEN = re.compile(r"\s*([^,()/\s]+|[,()/])")


def parse_fields(spec: str) -> dict[str, Any]:
    """``a,b/c,d(e,f/g)`` -> {"a": None, "b": {"c": None}, "d": {"e": None, "f": {"g": None}}}.

    None means "the whole value". Raises ValueError on a malformed selection.
    """
    tokens = [m.group(1) for m in _FIELD_TOKEN.finditer(spec)]
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def selection() -> dict[str, Any]:
        nonlocal position
        tree: dict[str, Any] = {}
        while peek() not in (None, ")"):
            path = [tokens[position]]
            position += 1
            while peek() == "/":
                if position + 1 >= len(tokens) or tokens[position + 1] in ",()/":
                    raise ValueError(spec)
                path.append(tokens[position + 1])
                position += 2
            sub: dict[str, Any] | None = None
            if peek() == "(":
                position += 1
                sub = selection()
                if peek() != ")":
                    raise ValueError(spec)
                position += 1
            node: dict[str, Any] | None = tree
            for name in path[:-1]:
                if name in node and node[name] is None:  # type: ignore[operator]
                    node = None  # an ancestor is already selected whole
                    break
                node = node.setdefault(name, {})  # type: ignore[union-attr]
            if node is not None:
                last = path[-1]
                if sub is None or (last in node and node[last] is None):
                    node[last] = None
                else:
                    node[last] = {**(node.get(last) or {}), **sub}
            if peek() == ",":
                position += 1
            elif peek() not in (None, ")"):
                raise ValueError(spec)
        return tree

    tree = selection()
    if position != len(tokens):
        raise ValueError(spec)
    return tree


def apply_fields(value: Any, tree: dict[str, Any] | None) -> Any:
    if tree is None:
        return value
    if isinstance(value, list):
        return [apply_fields(item, tree) for item in value]
    if isinstance(value, dict):
        return {k: apply_fields(v, tree[k]) for k, v in value.items() if k in tree or "*" in tree}
    return value


def _partial(response: Response, fields: str | None) -> Response:
    if not fields or response.status_code >= 300 or not response.headers.get("content-type", "").startswith("application/json"):
        return response
    try:
        tree = parse_fields(fields)
    except ValueError:
        return error_response(invalid(f"Invalid field selection {fields}"))
    body = apply_fields(json.loads(response.body), tree)
    return JSONResponse(body, status_code=response.status_code, media_type=JSON_TYPE)
