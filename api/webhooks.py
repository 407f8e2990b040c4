"""Provider push endpoints: verify, hand over, answer fast.

Microsoft Graph wants the ``validationToken`` handshake answered within 10 s and
every notification acknowledged within 3 s, so nothing here waits for a sync:
``accept_push`` authenticates the push (clientState / Pub/Sub OIDC token) and
enqueues, and the answer goes out.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from api.dependencies import ApiDependencies
from sync_engine.domain import Provider
from sync_engine.providers.base import PushRejected

log = logging.getLogger(__name__)

# Graph batches notifications; a few hundred KB is already generous.
MAX_PUSH_BODY_BYTES = 1024 * 1024
MAX_VALIDATION_TOKEN_CHARS = 4096


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is larger than we ever accept."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_PUSH_BODY_BYTES:
        return None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_PUSH_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _accept(rt: ApiDependencies, provider: Provider, request: Request, body: bytes) -> int:
    return await rt.services.notifications.accept_push(provider, dict(request.headers), dict(request.query_params), body)


async def graph_webhook(request: Request) -> Response:
    token = request.query_params.get("validationToken")
    if token is not None:
        # Subscription validation: echo the (already URL-decoded) token as plain text.
        if len(token) > MAX_VALIDATION_TOKEN_CHARS:
            return PlainTextResponse("validation token too long", status_code=400)
        return PlainTextResponse(token, headers={"X-Content-Type-Options": "nosniff"})
    return await _push(request, Provider.OUTLOOK, rejected_status=400)


async def gmail_webhook(request: Request) -> Response:
    return await _push(request, Provider.GMAIL, rejected_status=401)


async def _push(request: Request, provider: Provider, *, rejected_status: int) -> Response:
    body = await _read_body(request)
    if body is None:
        return PlainTextResponse("payload too large", status_code=413)
    rt: ApiDependencies = request.app.state.runtime
    try:
        accepted = await _accept(rt, provider, request, body)
    except PushRejected:
        # No detail: the caller is either a provider with a bug or someone probing.
        log.warning("rejected %s push", provider.value)
        return Response(status_code=rejected_status)
    log.debug("accepted %d %s notices", accepted, provider.value)
    return Response(status_code=202)
