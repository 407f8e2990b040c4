"""The OAuth redirect target: ``/oauth/{provider}/callback``.

The provider sends the browser back here with ``code`` and ``state`` (or an
``error``): in the query string (Google) or as an auto-submitted form POST
(Microsoft, ``response_mode=form_post``). The connection service exchanges the code and stores the tokens
encrypted. The browser then goes back to the app page that started the sign-in
(``return_to``) with ``?emailConnection=connected|error&reason=...``, or sees a tiny
page when there is none. Nothing from the provider (codes, tokens) is echoed.
"""

from __future__ import annotations

import html
import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from sync_engine.domain import Provider
from sync_engine.runtime import Runtime

log = logging.getLogger(__name__)

_REASON_SAFE = re.compile(r"[^A-Za-z0-9_.\- ]")
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{detail}</p><p>You can close this window.</p></body></html>
"""


def _short_reason(reason: str | None) -> str:
    """A short code-like reason, safe in a URL and in HTML."""
    return _REASON_SAFE.sub("", reason or "failed")[:80] or "failed"


# A form_post answer is a handful of short fields; anything larger is not one.
MAX_FORM_BYTES = 16 * 1024


async def _callback_params(request: Request) -> dict[str, str] | None:
    """Query parameters, overlaid with the fields of a form POST; None for an unusable body."""
    params = dict(request.query_params)
    if request.method == "POST":
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            return None
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return None
        try:
            params.update(parse_qsl(body.decode("ascii"), keep_blank_values=True))
        except UnicodeDecodeError:
            return None
    return params


def with_outcome(return_to: str, connected: bool, reason: str | None) -> str:
    parts = urlsplit(return_to)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("emailConnection", "reason")]
    query.append(("emailConnection", "connected" if connected else "error"))
    if not connected:
        query.append(("reason", _short_reason(reason)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


async def oauth_callback(request: Request) -> Response:
    from sync_engine.services.connections import complete_connection

    try:
        provider = Provider(request.path_params["provider"])
    except ValueError:
        return PlainTextResponse("unknown provider", status_code=404)
    params = await _callback_params(request)
    if params is None:
        return PlainTextResponse("expected an application/x-www-form-urlencoded sign-in answer", status_code=400)
    rt: Runtime = request.app.state.runtime
    outcome = await complete_connection(rt, provider=provider, params=params)
    connected = outcome.error is None and outcome.connection_id is not None
    if not connected:
        log.info("%s sign-in failed: %s", provider.value, _short_reason(outcome.error))
    if outcome.return_to:
        return RedirectResponse(with_outcome(outcome.return_to, connected, outcome.error), status_code=303)
    if connected:
        page = _PAGE.format(title="Mailbox connected", detail="Your mailbox is now syncing with the CRM.")
    else:
        detail = f"The mailbox could not be connected ({html.escape(_short_reason(outcome.error))})."
        page = _PAGE.format(title="Connection failed", detail=detail)
    return HTMLResponse(page, status_code=200 if connected else 400, headers={"Cache-Control": "no-store"})
