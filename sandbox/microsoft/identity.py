"""Microsoft identity platform v2.0: discovery, authorize (auth code + PKCE), token.

Served under ``{base}/{tenant}`` so ``msal`` can use ``{base}/common`` as its
authority. msal fetches ``/{tenant}/v2.0/.well-known/openid-configuration``;
with its default ``instance_discovery`` it would first call the instance
discovery endpoint on login.microsoftonline.com (a host we cannot be), so apps
pass ``instance_discovery=False`` - or the URL of our own copy of that endpoint,
``{base}/common/discovery/instance``, which is served here too.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
from jwt.algorithms import RSAAlgorithm
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox import ids
from sandbox.account_chooser import account_chooser
from sandbox.context import Sandbox, bind_sandbox
from sandbox.microsoft.state import ms_state
from sandbox.store import Mailbox
from sandbox.tokens import client_credentials, pkce_matches

TENANT_ALIASES = {"common", "organizations", "consumers"}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_IMPLICIT_SCOPES = {"openid", "profile", "offline_access", "email"}
GRAPH_RESOURCE = "https://graph.microsoft.com/"
ACCESS_PREFIX = "EwB"  # shape of Microsoft consumer tokens: opaque to clients
REFRESH_PREFIX = "M.C5"
CODE_PREFIX = "M.C5_BAY."


def _tenant_ok(tenant: str) -> bool:
    return tenant.lower() in TENANT_ALIASES or bool(_GUID.match(tenant)) or tenant.lower().endswith(".onmicrosoft.com")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _aad_error(request: Request, error: str, code: int, description: str, status: int = 400) -> JSONResponse:
    """An error body shaped like Entra ID's token endpoint errors."""
    now = ids.utcnow()
    trace, correlation = ids.new_guid(), ids.new_guid()
    return JSONResponse(
        {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
                f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}"
            ),
            "error_codes": [code],
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{_base(request)}/error?code={code}",
        },
        status_code=status,
    )


def _unknown_tenant(request: Request, tenant: str) -> JSONResponse:
    return _aad_error(request, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")


def openid_configuration(sandbox: Sandbox, request: Request) -> Response:
    tenant = request.path_params["tenant"]
    if not _tenant_ok(tenant):
        return _unknown_tenant(request, tenant)
    base = _base(request)
    issuer_tenant = "{tenantid}" if tenant.lower() in TENANT_ALIASES else tenant
    return JSONResponse(
        {
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
                "name", "tid", "ver", "at_hash", "c_hash", "email",
            ],
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": request.url.netloc,
            "rbac_url": "https://pas.windows.net",
        }
    )


def instance_discovery(sandbox: Sandbox, request: Request) -> Response:
    """Our copy of login.microsoftonline.com/common/discovery/instance."""
    endpoint = request.query_params.get("authorization_endpoint", "")
    match = re.match(r"https?://[^/]+/([^/]+)/", endpoint)
    tenant = match.group(1) if match else "common"
    host = request.url.netloc
    return JSONResponse(
        {
            "tenant_discovery_endpoint": f"{_base(request)}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }
    )


def jwks(sandbox: Sandbox, request: Request) -> Response:
    key = ms_state(sandbox).signing_key
    jwk = json.loads(RSAAlgorithm.to_jwk(key.private_key.public_key()))
    jwk.update({"kid": key.kid, "use": "sig", "issuer": f"{_base(request)}/{{tenantid}}/v2.0"})
    return JSONResponse({"keys": [jwk]})


def _redirect_with(redirect_uri: str, params: dict[str, str], response_mode: str) -> Response:
    if response_mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
        )
        page = (
            f'<html><body onload="document.forms[0].submit()"><form method="POST" '
            f'action="{html.escape(redirect_uri)}">{inputs}<noscript><button>Continue</button></noscript>'
            "</form></body></html>"
        )
        return HTMLResponse(page)
    separator = "#" if response_mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)


async def authorize(sandbox: Sandbox, request: Request) -> Response:
    tenant = request.path_params["tenant"]
    q = request.query_params
    if not _tenant_ok(tenant):
        return HTMLResponse(f"<h1>AADSTS90002: Tenant '{html.escape(tenant)}' not found.</h1>", status_code=400)
    client_id, redirect_uri = q.get("client_id", ""), q.get("redirect_uri", "")
    if not client_id or not redirect_uri:
        return HTMLResponse("<h1>AADSTS900144: The request body must contain client_id and redirect_uri.</h1>", status_code=400)
    response_mode = q.get("response_mode", "query")
    state = q.get("state")
    echo = {"state": state} if state is not None else {}
    if "code" not in q.get("response_type", "").split():
        return _redirect_with(redirect_uri, {"error": "unsupported_response_type",
                              "error_description": "AADSTS700054: response_type 'code' is required.", **echo}, response_mode)
    login_hint = q.get("login_hint", "").strip()
    if not login_hint:
        if q.get("prompt") == "none":
            return _redirect_with(redirect_uri, {"error": "login_required",
                                  "error_description": "AADSTS50058: A silent sign-in request was sent but no user is signed in.", **echo}, response_mode)
        return account_chooser(request, sandbox.store.mailboxes("outlook"), title="Sign in to your account", heading="Pick an account",
                               empty="No Outlook mailboxes exist in the sandbox.")
    mailbox = sandbox.store.mailbox(login_hint)
    if mailbox is None or mailbox.provider != "outlook":
        return _redirect_with(redirect_uri, {"error": "access_denied",
                              "error_description": f"AADSTS50020: User account '{login_hint}' does not exist in the sandbox.", **echo}, response_mode)
    # The user signs in and consents again: a revoked grant is replaced.
    mailbox.revoked = False
    code = sandbox.tokens.issue_code(
        CODE_PREFIX,
        mailbox=mailbox.address.lower(),
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=q.get("scope", "").split(),
        nonce=q.get("nonce"),
        code_challenge=q.get("code_challenge"),
        code_challenge_method=q.get("code_challenge_method"),
    )
    return _redirect_with(redirect_uri, {"code": code.value, **echo, "session_state": ids.new_guid()}, response_mode)


def _short_scope(scope: str) -> str:
    return scope[len(GRAPH_RESOURCE):] if scope.lower().startswith(GRAPH_RESOURCE) else scope


def _id_token(sandbox: Sandbox, request: Request, mailbox: Mailbox, client_id: str, nonce: str | None) -> str:
    now = ids.utcnow()
    key = ms_state(sandbox).signing_key
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": f"{_base(request)}/{mailbox.tenant_id}/v2.0",
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
        "name": mailbox.name,
        "oid": mailbox.user_id,
        "preferred_username": mailbox.address,
        "email": mailbox.address,
        "sub": base64.urlsafe_b64encode(hashlib.sha256(f"{mailbox.user_id}:{client_id}".encode()).digest()).rstrip(b"=").decode(),
        "tid": mailbox.tenant_id,
        "uti": ids.opaque_token("", 16),
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def _token_response(
    sandbox: Sandbox, request: Request, mailbox: Mailbox, client_id: str, scopes: list[str],
    nonce: str | None, client_info: bool,
) -> JSONResponse:
    ttl = sandbox.config.access_token_ttl
    access = sandbox.tokens.issue_access(ACCESS_PREFIX, mailbox.address, client_id, scopes, ttl)
    granted = [_short_scope(s) for s in scopes if s != "offline_access"]
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join(granted),
        "expires_in": ttl,
        "ext_expires_in": ttl,
        "access_token": access.value,
    }
    if "offline_access" in scopes:
        body["refresh_token"] = sandbox.tokens.issue_refresh(REFRESH_PREFIX, mailbox.address, client_id, scopes).value
    if "openid" in scopes:
        body["id_token"] = _id_token(sandbox, request, mailbox, client_id, nonce)
    if client_info:
        info = json.dumps({"uid": mailbox.user_id, "utid": mailbox.tenant_id}).encode()
        body["client_info"] = base64.urlsafe_b64encode(info).rstrip(b"=").decode()
    request.scope.setdefault("state", {})["sandbox.mailbox"] = mailbox.address
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def token(sandbox: Sandbox, request: Request) -> Response:
    tenant = request.path_params["tenant"]
    if not _tenant_ok(tenant):
        return _unknown_tenant(request, tenant)
    # Parsed by hand: starlette's form parser needs python-multipart, which a
    # urlencoded body does not justify.
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    client_id, secret = client_credentials(form, request.headers.get("authorization", ""))
    if not sandbox.tokens.check_client(client_id, secret):
        return _aad_error(request, "invalid_client", 7000215,
                          "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.", 401)
    grant_type = form.get("grant_type", "")
    client_info = form.get("client_info") == "1"
    if grant_type == "authorization_code":
        return _redeem_code(sandbox, request, form, client_id, client_info)
    if grant_type == "refresh_token":
        return _redeem_refresh(sandbox, request, form, client_id, client_info)
    return _aad_error(request, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'.")


def _redeem_code(sandbox: Sandbox, request: Request, form: dict[str, str], client_id: str, client_info: bool) -> Response:
    code = sandbox.tokens.codes.get(form.get("code", ""))
    if code is None:
        return _aad_error(request, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
    if code.used:
        return _aad_error(request, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
    code.used = True  # single use: any redemption attempt burns it
    if ids.utcnow() >= code.expires_at:
        return _aad_error(request, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity.")
    if code.client_id != client_id:
        return _aad_error(request, "invalid_grant", 700005, "Provided Authorization Code is intended to use against other tenant or application.")
    if form.get("redirect_uri", "") != code.redirect_uri:
        return _aad_error(request, "invalid_grant", 500112,
                          f"The reply address '{form.get('redirect_uri', '')}' does not match the reply address '{code.redirect_uri}' provided when requesting Authorization code.")
    if code.code_challenge:
        verifier = form.get("code_verifier")
        if not verifier:
            return _aad_error(request, "invalid_request", 501481, "The Code_Verifier is missing.")
        if not pkce_matches(verifier, code.code_challenge, code.code_challenge_method):
            return _aad_error(request, "invalid_grant", 50148, "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.")
    mailbox = sandbox.store.mailbox(code.mailbox)
    if mailbox is None or mailbox.revoked:
        return _aad_error(request, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed.")
    return _token_response(sandbox, request, mailbox, client_id, code.scopes, code.nonce, client_info)


def _redeem_refresh(sandbox: Sandbox, request: Request, form: dict[str, str], client_id: str, client_info: bool) -> Response:
    refresh = sandbox.tokens.refresh.get(form.get("refresh_token", ""))
    if refresh is None:
        return _aad_error(request, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
    if refresh.client_id != client_id:
        return _aad_error(request, "invalid_grant", 700005, "Provided refresh token is intended to use against other tenant or application.")
    mailbox = sandbox.store.mailbox(refresh.mailbox)
    if refresh.revoked or mailbox is None or mailbox.revoked:
        return _aad_error(request, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.")
    if refresh.rotated and sandbox.config.strict_refresh_rotation:
        return _aad_error(request, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity.")
    requested = form.get("scope", "").split() or refresh.scopes
    scopes = list(dict.fromkeys([*requested, *(s for s in refresh.scopes if s in _IMPLICIT_SCOPES)]))
    refresh.rotated = True
    return _token_response(sandbox, request, mailbox, client_id, scopes, None, client_info)


def routes(sandbox: Sandbox) -> list[Route]:
    def bind(handler: Any) -> Any:
        return bind_sandbox(sandbox, handler)

    return [
        Route("/common/discovery/instance", bind(instance_discovery)),
        Route("/{tenant}/discovery/instance", bind(instance_discovery)),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", bind(openid_configuration)),
        Route("/{tenant}/discovery/v2.0/keys", bind(jwks)),
        Route("/{tenant}/oauth2/v2.0/authorize", bind(authorize)),
        Route("/{tenant}/oauth2/v2.0/token", bind(token), methods=["POST"]),
    ]
