"""Google OAuth 2.0 for web server apps: authorize, token, revoke, signing certs.

Paths mirror Google's hosts on one origin, so an app swaps only the host:
``/o/oauth2/v2/auth`` (accounts.google.com), ``/token`` and ``/revoke``
(oauth2.googleapis.com), ``/oauth2/v1/certs`` and ``/oauth2/v3/certs``
(www.googleapis.com).

Google behaviours kept on purpose because apps trip over them:
- ``access_type`` defaults to ``online``: no refresh token without ``offline``;
- a refresh token is issued on the first consent of a user to a client, and
  again only with ``prompt=consent``;
- the refresh grant returns no new refresh token (the old one stays valid);
- ``email``/``profile`` scopes come back as their userinfo URLs;
- revoking either token of a grant revokes the grant (both tokens).
"""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox import ids
from sandbox.account_chooser import account_chooser
from sandbox.context import Sandbox, bind_sandbox
from sandbox.google.signing import subject_id
from sandbox.google.state import google_state
from sandbox.store import Mailbox
from sandbox.tokens import AccessToken, RefreshToken, client_credentials, pkce_matches

ISSUER = "https://accounts.google.com"
ACCESS_PREFIX = "ya29.a0"
REFRESH_PREFIX = "1//0"
CODE_PREFIX = "4/0A"
SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}
_NO_STORE = {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate", "Pragma": "no-cache"}


def normalize_scopes(raw: str) -> list[str]:
    return list(dict.fromkeys(SCOPE_ALIASES.get(s, s) for s in raw.split()))


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=_NO_STORE)


def _error_page(message: str) -> HTMLResponse:
    # Google shows an "Access blocked" page instead of redirecting for client errors.
    return HTMLResponse(
        f"<!doctype html><html><head><title>Error 400</title></head><body><h1>Access blocked: authorization error</h1>"
        f"<p>Error 400: invalid_request</p><p>{html.escape(message)}</p></body></html>",
        status_code=400,
    )


def _redirect(redirect_uri: str, params: dict[str, str]) -> Response:
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)


async def authorize(sandbox: Sandbox, request: Request) -> Response:
    q = request.query_params
    client_id, redirect_uri = q.get("client_id", ""), q.get("redirect_uri", "")
    if not client_id:
        return _error_page("Missing required parameter: client_id")
    if not redirect_uri:
        return _error_page("Missing required parameter: redirect_uri")
    echo = {"state": q["state"]} if "state" in q else {}
    if q.get("response_type", "") != "code":
        return _redirect(redirect_uri, {**echo, "error": "unsupported_response_type"})
    if not q.get("scope", "").strip():
        return _error_page("Missing required parameter: scope")
    method = q.get("code_challenge_method")
    if q.get("code_challenge") and (method or "plain") not in ("S256", "plain"):
        return _error_page(f"Invalid code_challenge_method: {method}")
    login_hint = q.get("login_hint", "").strip()
    if not login_hint:
        if q.get("prompt") == "none":
            return _redirect(redirect_uri, {**echo, "error": "interaction_required"})
        return account_chooser(request, sandbox.store.mailboxes("gmail"), title="Sign in - Google Accounts", heading="Choose an account",
                               empty="No Gmail mailboxes exist in the sandbox.")
    mailbox = sandbox.store.mailbox(login_hint)
    if mailbox is None or mailbox.provider != "gmail":
        return _redirect(redirect_uri, {**echo, "error": "access_denied"})
    mailbox.revoked = False  # the user signs in and consents again
    state = google_state(sandbox)
    scopes = normalize_scopes(q.get("scope", ""))
    key = (client_id, mailbox.address.lower())
    if q.get("include_granted_scopes") == "true":
        scopes = list(dict.fromkeys([*scopes, *sorted(state.granted_scopes.get(key, set()))]))
    code = sandbox.tokens.issue_code(
        CODE_PREFIX,
        mailbox=mailbox.address.lower(),
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        nonce=q.get("nonce"),
        code_challenge=q.get("code_challenge"),
        code_challenge_method=method,
    )
    # What the code was granted under decides whether a refresh token comes with it.
    consent = "consent" in q.get("prompt", "").split()
    state.code_options[code.value] = (q.get("access_type", "online") == "offline", consent)
    return _redirect(
        redirect_uri,
        {**echo, "iss": ISSUER, "code": code.value, "scope": " ".join(scopes), "authuser": "0",
         "prompt": "consent" if consent or key not in state.granted_scopes else "none"},
    )


def _id_token(sandbox: Sandbox, mailbox: Mailbox, client_id: str, scopes: list[str], nonce: str | None) -> str:
    now = ids.utcnow()
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "azp": client_id,
        "aud": client_id,
        "sub": subject_id(mailbox.user_id),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    if SCOPE_ALIASES["email"] in scopes:
        claims.update(email=mailbox.address, email_verified=True)
    if SCOPE_ALIASES["profile"] in scopes:
        claims.update(name=mailbox.name, given_name=mailbox.name.split(" ")[0])
    if nonce is not None:
        claims["nonce"] = nonce
    return google_state(sandbox).signing_key.sign(claims)


def _token_body(
    sandbox: Sandbox, request: Request, mailbox: Mailbox, client_id: str, scopes: list[str],
    refresh: RefreshToken | None, nonce: str | None,
) -> JSONResponse:
    ttl = sandbox.config.access_token_ttl
    access = sandbox.tokens.issue_access(ACCESS_PREFIX, mailbox.address, client_id, scopes, ttl)
    # Google reports one second less than the lifetime.
    body: dict[str, Any] = {"access_token": access.value, "expires_in": max(ttl - 1, 0)}
    if refresh is not None:
        body["refresh_token"] = refresh.value
    body.update(scope=" ".join(scopes), token_type="Bearer")
    if {"openid", SCOPE_ALIASES["email"], SCOPE_ALIASES["profile"]} & set(scopes):
        body["id_token"] = _id_token(sandbox, mailbox, client_id, scopes, nonce)
    request.scope.setdefault("state", {})["sandbox.mailbox"] = mailbox.address
    return JSONResponse(body, headers=_NO_STORE)


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: starlette's form parser needs python-multipart.
    body = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    for key, value in request.query_params.items():
        form.setdefault(key, value)
    return form


async def token(sandbox: Sandbox, request: Request) -> Response:
    form = await _form(request)
    client_id, secret = client_credentials(form, request.headers.get("authorization", ""))
    if not client_id:
        return _oauth_error("invalid_request", "Could not determine client ID from request.")
    if not sandbox.tokens.check_client(client_id, secret):
        return _oauth_error("invalid_client", "Unauthorized", 401)
    grant_type = form.get("grant_type", "")
    if grant_type == "authorization_code":
        return _redeem_code(sandbox, request, form, client_id)
    if grant_type == "refresh_token":
        return _redeem_refresh(sandbox, request, form, client_id)
    if not grant_type:
        return _oauth_error("unsupported_grant_type", "Missing grant_type parameter value")
    return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")


def _redeem_code(sandbox: Sandbox, request: Request, form: dict[str, str], client_id: str) -> Response:
    state = google_state(sandbox)
    code = sandbox.tokens.codes.get(form.get("code", ""))
    if code is None or not code.value.startswith(CODE_PREFIX):
        return _oauth_error("invalid_grant", "Malformed auth code.")
    if code.used or ids.utcnow() >= code.expires_at or code.client_id != client_id:
        code.used = True
        return _oauth_error("invalid_grant", "Bad Request")
    code.used = True  # single use: any redemption attempt burns it
    if form.get("redirect_uri", "") != code.redirect_uri:
        return _oauth_error("redirect_uri_mismatch", "Bad Request")
    if code.code_challenge:
        verifier = form.get("code_verifier")
        if not verifier:
            return _oauth_error("invalid_grant", "Missing code verifier.")
        if not pkce_matches(verifier, code.code_challenge, code.code_challenge_method):
            return _oauth_error("invalid_grant", "Invalid code verifier.")
    mailbox = sandbox.store.mailbox(code.mailbox)
    if mailbox is None or mailbox.revoked:
        return _oauth_error("invalid_grant", "Token has been expired or revoked.")
    offline, consent = state.code_options.pop(code.value, (False, False))
    key = (client_id, mailbox.address.lower())
    first_consent = not any(
        t.client_id == client_id and t.mailbox == key[1] and not t.revoked for t in sandbox.tokens.refresh.values()
    )
    refresh = None
    if offline and (consent or first_consent):
        refresh = sandbox.tokens.issue_refresh(REFRESH_PREFIX, mailbox.address, client_id, code.scopes)
    state.granted_scopes.setdefault(key, set()).update(code.scopes)
    return _token_body(sandbox, request, mailbox, client_id, code.scopes, refresh, code.nonce)


def _redeem_refresh(sandbox: Sandbox, request: Request, form: dict[str, str], client_id: str) -> Response:
    refresh = sandbox.tokens.refresh.get(form.get("refresh_token", ""))
    if refresh is None:
        return _oauth_error("invalid_grant", "Bad Request")
    if refresh.client_id != client_id:
        return _oauth_error("unauthorized_client", "Unauthorized")
    mailbox = sandbox.store.mailbox(refresh.mailbox)
    if refresh.revoked or mailbox is None or mailbox.revoked:
        return _oauth_error("invalid_grant", "Token has been expired or revoked.")
    scopes = refresh.scopes
    if form.get("scope"):
        requested = normalize_scopes(form["scope"])
        if not set(requested) <= set(refresh.scopes):
            return _oauth_error("invalid_scope", "Bad Request")
        scopes = requested
    return _token_body(sandbox, request, mailbox, client_id, scopes, None, None)


def _revoke_grant(sandbox: Sandbox, token: AccessToken | RefreshToken) -> None:
    """Revoking one token of a grant revokes the grant: every token of that client and user."""
    for other in [*sandbox.tokens.access.values(), *sandbox.tokens.refresh.values()]:
        if other.client_id == token.client_id and other.mailbox == token.mailbox:
            other.revoked = True
    google_state(sandbox).granted_scopes.pop((token.client_id, token.mailbox), None)


async def revoke(sandbox: Sandbox, request: Request) -> Response:
    form = await _form(request)
    value = form.get("token", "")
    found: AccessToken | RefreshToken | None = sandbox.tokens.access.get(value) or sandbox.tokens.refresh.get(value)
    if found is None or found.revoked or (isinstance(found, AccessToken) and found.expired()):
        return _oauth_error("invalid_token", "Token expired or revoked")
    _revoke_grant(sandbox, found)
    request.scope.setdefault("state", {})["sandbox.mailbox"] = found.mailbox
    return JSONResponse({}, headers=_NO_STORE)


def certs_v1(sandbox: Sandbox, request: Request) -> Response:
    return JSONResponse(google_state(sandbox).signing_key.pem_certs(), headers={"Cache-Control": "public, max-age=3600"})


def certs_v3(sandbox: Sandbox, request: Request) -> Response:
    return JSONResponse(google_state(sandbox).signing_key.jwks(), headers={"Cache-Control": "public, max-age=3600"})


def openid_configuration(sandbox: Sandbox, request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "issuer": ISSUER,
            "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
            "token_endpoint": f"{base}/token",
            "revocation_endpoint": f"{base}/revoke",
            "jwks_uri": f"{base}/oauth2/v3/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "sub"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }
    )


def routes(sandbox: Sandbox) -> list[Route]:
    def bind(handler: Any) -> Any:
        return bind_sandbox(sandbox, handler)

    return [
        Route("/o/oauth2/v2/auth", bind(authorize)),
        Route("/o/oauth2/auth", bind(authorize)),
        Route("/token", bind(token), methods=["POST"]),
        Route("/o/oauth2/token", bind(token), methods=["POST"]),
        Route("/oauth2/v4/token", bind(token), methods=["POST"]),
        Route("/revoke", bind(revoke), methods=["POST", "GET"]),
        Route("/o/oauth2/revoke", bind(revoke), methods=["POST", "GET"]),
        Route("/oauth2/v1/certs", bind(certs_v1)),
        Route("/oauth2/v3/certs", bind(certs_v3)),
        Route("/.well-known/openid-configuration", bind(openid_configuration)),
    ]
