"""The OAuth redirect target: ``/oauth/{provider}/callback``.

The provider sends the browser back here with ``code`` and ``state`` (or an
``error``); the connection service exchanges the code and stores the tokens
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
    rt: Runtime = request.app.state.runtime
    outcome = await complete_connection(rt, provider=provider, params=dict(request.query_params))
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
