"""The page a browser sees at the end of a mailbox sign-in when no app takes over.

An app (the CRM's SPA) passes its own page as ``redirectUri`` and finishes the sign-in
itself: it reads ``emailConnectionFlow`` from its URL and calls
``completeEmailConnection``. Without an app in front (``emailsync dev``, a sign-in URL
opened by hand), the sign-in ends here, on the API's own origin:

- ``GET /connected`` (pass ``{PUBLIC_BASE_URL}/connected`` as ``redirectUri``), and the
  OAuth callback itself when the sign-in was started without a ``redirectUri``, show
  what happened and how to finish: the flow token, the ``completeEmailConnection``
  mutation to run (a link opens it in GraphiQL), and a button that runs it with a
  bearer token, pre-filled from the headers GraphiQL saved in this browser.

The page cannot confirm anything by itself: confirming takes the credentials of the
CRM user who started the sign-in, which only that user's session holds. The token is
shown only to the browser that came back from the provider; the page is not cached,
not framed, sends no referrer and runs only its own script (CSP nonce).
"""

from __future__ import annotations

import html
import re
import secrets
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

FLOW_PARAM = "emailConnectionFlow"
# secrets.token_urlsafe(32) is 43 characters; anything else is not one of ours.
_FLOW_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
_REASON_SAFE = re.compile(r"[^A-Za-z0-9_.\- ]")
_PROVIDER_NAMES = {"outlook": "Microsoft", "gmail": "Google"}

COMPLETE_MUTATION = (
    "mutation ($flowToken: String!) {\n"
    "  completeEmailConnection(input: {flowToken: $flowToken}) {\n"
    "    emailConnection { address provider status }\n"
    "    userErrors { code message }\n"
    "  }\n"
    "}"
)


def short_reason(reason: str | None) -> str:
    """A short code-like reason, safe in a URL and in HTML."""
    return _REASON_SAFE.sub("", reason or "failed")[:80] or "failed"


def inline_mutation(flow_token: str) -> str:
    """The completion mutation with the token written in, to paste into GraphiQL."""
    return (f'mutation {{ completeEmailConnection(input: {{flowToken: "{flow_token}"}}) '
            "{ emailConnection { address provider status } userErrors { code message } } }")


_STYLE = """body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
pre,code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}pre{padding:.6rem;white-space:pre-wrap;word-break:break-all}
input{width:100%;font-family:monospace}button{margin-top:.5rem;padding:.4rem 1rem}#result{font-weight:bold}"""

_SCRIPT = """(function () {
  var form = document.getElementById("confirm"), auth = document.getElementById("auth");
  var result = document.getElementById("result");
  try {  // GraphiQL on this origin keeps its headers editor in localStorage
    var saved = JSON.parse(localStorage.getItem("graphiql:headers") || "{}");
    if (typeof saved === "string") saved = JSON.parse(saved);
    var header = saved && (saved.Authorization || saved.authorization);
    if (typeof header === "string") auth.value = header.replace(/^Bearer\\s+/i, "");
  } catch (e) {}
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    result.textContent = "Confirming...";
    fetch(form.dataset.endpoint, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + auth.value.trim()},
      body: JSON.stringify({query: form.dataset.query, variables: {flowToken: form.dataset.flowToken}})
    }).then(function (r) { return r.json(); }).then(function (body) {
      var payload = body.data && body.data.completeEmailConnection;
      if (payload && payload.emailConnection) {
        result.textContent = "Connected: " + payload.emailConnection.address + " (" +
          payload.emailConnection.status + "). The mailbox now syncs with the CRM; you can close this page.";
      } else if (payload && payload.userErrors.length) {
        result.textContent = "Not connected: " + payload.userErrors[0].code + " (" + payload.userErrors[0].message + ")";
      } else {
        result.textContent = "Not connected: " + JSON.stringify(body.errors || body);
      }
    }, function (error) { result.textContent = "The request failed: " + error; });
  });
})();"""


def _graphql_path(request: Request) -> str:
    base = request.app.state.runtime.settings.public_base_url
    return urlsplit(base).path.rstrip("/") + "/graphql"


def _page(title: str, body: str, nonce: str, status: int) -> HTMLResponse:
    document = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f'<style nonce="{nonce}">{_STYLE}</style></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n')
    headers = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                                   "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    }
    return HTMLResponse(document, status_code=status, headers=headers)


def sign_in_outcome_page(request: Request, flow_token: str | None, error: str | None, *,
                         provider: str | None = None, status: int | None = None) -> HTMLResponse:
    """What happened to a sign-in, and the next step (see the module docstring)."""
    nonce = secrets.token_urlsafe(16)
    at = html.escape(_PROVIDER_NAMES.get(provider or "", "the provider"))
    if flow_token is None:
        reason = html.escape(short_reason(error))
        body = (f"<p>The mailbox was <strong>not</strong> connected (<code>{reason}</code>). Nothing was changed.</p>"
                "<p>Start again from the app (<code>startEmailConnection</code>), and finish the sign-in within "
                "15 minutes.</p>")
        return _page("Mailbox not connected", body, nonce, 400 if status is None else status)
    graphql = _graphql_path(request)
    token = html.escape(flow_token)
    graphiql_link = html.escape(f"{graphql}?q={quote(inline_mutation(flow_token), safe='')}")
    body = f"""<p>You signed in at {at}. <strong>Nothing is connected yet</strong>: the CRM user who started
this sign-in must confirm it, within 5 minutes, once. This protects you from connecting a mailbox to
someone else's account through a sign-in link they sent you.</p>
<p>An app does this by itself. By hand (for instance in <code>emailsync dev</code>), run this mutation in
GraphiQL with the same <code>Authorization</code> header as <code>startEmailConnection</code>
(<a href="{graphiql_link}">open it in GraphiQL</a>):</p>
<pre id="mutation">{html.escape(inline_mutation(flow_token))}</pre>
<p>Or confirm here, with that user's bearer token (filled in from GraphiQL's headers in this browser, if any):</p>
<form id="confirm" data-endpoint="{html.escape(graphql)}" data-flow-token="{token}"
 data-query="{html.escape(COMPLETE_MUTATION)}">
<label for="auth">Bearer token</label><input id="auth" type="password" autocomplete="off" spellcheck="false">
<button type="submit">Confirm and connect the mailbox</button></form>
<p id="result" role="status"></p>
<p>Flow token: <code id="flow-token">{token}</code></p>
<script nonce="{nonce}">{_SCRIPT}</script>"""
    return _page("Confirm the mailbox connection", body, nonce, 200 if status is None else status)


async def connected_page(request: Request) -> Response:
    """``GET /connected``: the end of a sign-in whose ``redirectUri`` is this page."""
    flow_token = request.query_params.get(FLOW_PARAM)
    if flow_token is not None and _FLOW_TOKEN.match(flow_token):
        return sign_in_outcome_page(request, flow_token, None, status=200)
    if flow_token is not None or request.query_params.get("emailConnection") == "error":
        reason = request.query_params.get("reason") if flow_token is None else "malformed_flow_token"
        return sign_in_outcome_page(request, None, reason, status=200)
    body = ("<p>No sign-in to confirm here. This page is where a mailbox sign-in ends when it was started with "
            "<code>redirectUri</code> set to this address: it then shows how to confirm it "
            "(<code>completeEmailConnection</code>).</p>")
    return _page("Mailbox sign-in", body, secrets.token_urlsafe(16), 200)

