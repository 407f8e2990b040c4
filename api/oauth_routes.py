"""The OAuth redirect target: ``/oauth/{provider}/callback``.

The provider sends the browser back here with ``code`` and ``state`` (or an
``error``): in the query string (Google) or as an auto-submitted form POST
(Microsoft, ``response_mode=form_post``). Nothing is connected here: the connection
service parks the answer and issues a one-time flow token, and the browser goes back
to the app page that started the sign-in (``return_to``) with
``?emailConnectionFlow=<token>``; the app then confirms with ``completeEmailConnection``
under its own credentials (see ``sync_engine.services.connections``). A failure goes
back as ``?emailConnection=error&reason=<code>``. Without a ``return_to``, the page
of ``api.pages`` (on this origin) says what happened and how to finish.

``return_to`` was checked against the allowed origins when the sign-in started; it is
checked again before redirecting (settings may have changed, a row may be tampered
with): a refused one gets the page, never a redirect, and never the token. Nothing
from the provider (codes, tokens) is echoed.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from api.dependencies import ApiDependencies
from api.origins import allowed_origins
from api.pages import FLOW_PARAM, short_reason, sign_in_outcome_page
from sync_engine.domain import Provider
from sync_engine.rules.redirects import is_allowed_redirect

log = logging.getLogger(__name__)

_OUR_PARAMS = (FLOW_PARAM, "emailConnection", "reason")

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


def with_outcome(return_to: str, flow_token: str | None, reason: str | None) -> str:
    """``return_to`` with the flow token (success) or ``emailConnection=error&reason=``."""
    parts = urlsplit(return_to)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _OUR_PARAMS]
    if flow_token is not None:
        query.append((FLOW_PARAM, flow_token))
    else:
        query += [("emailConnection", "error"), ("reason", short_reason(reason))]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


async def oauth_callback(request: Request) -> Response:
    try:
        provider = Provider(request.path_params["provider"])
    except ValueError:
        return PlainTextResponse("unknown provider", status_code=404)
    params = await _callback_params(request)
    if params is None:
        return PlainTextResponse("expected an application/x-www-form-urlencoded sign-in answer", status_code=400)
    rt: ApiDependencies = request.app.state.runtime
    answer = await rt.services.connections.accept_provider_answer(provider=provider, params=params)
    if answer.flow_token is None:
        log.info("%s sign-in failed: %s", provider.value, short_reason(answer.error))
    if answer.return_to is None:
        return sign_in_outcome_page(request, answer.flow_token, answer.error, provider=provider.value)
    if not is_allowed_redirect(answer.return_to, allowed_origins(rt.settings)):
        log.warning("%s sign-in: its return address is outside the allowed origins; not redirected", provider.value)
        return sign_in_outcome_page(request, None, "return_address_not_allowed", provider=provider.value)
    return RedirectResponse(
        with_outcome(answer.return_to, answer.flow_token, answer.error),
        status_code=303,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
