"""Google OAuth 2.0 for Gmail: authorization code with PKCE, refresh, revocation.

- The authorization URL is built here (no oauthlib): ``response_type=code``, the
  ``gmail.modify`` scope plus ``openid email profile`` (profile: the display name in the
  ID token), ``access_type=offline`` and
  ``prompt=consent`` (so Google issues a refresh token even on a re-connect),
  ``state``, an S256 ``code_challenge`` and ``login_hint``. The verifier travels in
  ``AuthorizationRequest.flow`` (stored encrypted until the callback).
- The code is redeemed at the token URI with ``httpx``; a consent that left out the
  Gmail scope (Google's granular consent screen lets users untick it) is refused.
- Refresh goes through google-auth (``google.oauth2.credentials.Credentials``) with a
  ``requests`` transport, which is synchronous: it runs in ``asyncio.to_thread``.
  ``invalid_grant`` (revoked, expired, password change) -> ``AuthRevokedError``.
- TLS: when ``ca_bundle`` is set, every client trusts it and only it - the requests
  session pins ``verify`` so ``REQUESTS_CA_BUNDLE`` in the environment cannot
  override it (requests merges the environment over the session).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import google.auth.exceptions
import google.auth.transport.requests
import httpx
import jwt
import requests
from google.oauth2.credentials import Credentials

from sync_engine.domain import AuthorizationRequest, AuthRevokedError, ProviderError, TokenSet
from sync_engine.providers.http_support import make_requests_session

log = logging.getLogger(__name__)

GMAIL_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
SCOPES: tuple[str, ...] = (GMAIL_SCOPE, "openid", "email", "profile")
# Token endpoint errors meaning the grant is gone: the user must sign in again.
REVOKED_ERRORS = frozenset({"invalid_grant"})


class AuthorizationFailedError(ProviderError):
    """The sign-in could not be completed (denied consent, bad state, bad code)."""


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge): 43-128 unreserved characters, RFC 7636."""
    verifier = secrets.token_urlsafe(64)[:96]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token_set_of(result: Mapping[str, Any], previous_refresh_token: str | None = None) -> TokenSet:
    access = result.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderError("the token endpoint returned no access token")
    try:
        seconds = int(result["expires_in"]) if result.get("expires_in") is not None else None
    except (TypeError, ValueError):
        seconds = None
    scope = result.get("scope")
    refresh = result.get("refresh_token")
    return TokenSet(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else previous_refresh_token,
        expires_at=datetime.now(UTC) + timedelta(seconds=seconds) if seconds is not None else None,
        scope=scope if isinstance(scope, str) else None,
    )


class GoogleAuth:
    def __init__(
        self,
        *,
        auth_uri: str,
        token_uri: str,
        revoke_uri: str,
        client_id: str,
        client_secret: str,
        ca_bundle: str | None,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.auth_uri = auth_uri
        self.token_uri = token_uri
        self.revoke_uri = revoke_uri
        self._client_id = client_id
        self._client_secret = client_secret
        self._ca_bundle = ca_bundle
        self._verify = verify
        self._timeout = timeout
        self._session: requests.Session | None = session
        self._http_transport = http_transport

    # ---- sign-in

    def begin(self, redirect_uri: str, login_hint: str | None) -> AuthorizationRequest:
        state = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        params = {
            "client_id": self._client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(SCOPES),
            "access_type": "offline",
            "prompt": "consent",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if login_hint:
            params["login_hint"] = login_hint
        separator = "&" if "?" in self.auth_uri else "?"
        return AuthorizationRequest(
            url=f"{self.auth_uri}{separator}{urlencode(params)}",
            state=state,
            flow={"state": state, "code_verifier": verifier, "redirect_uri": redirect_uri},
        )

    async def complete(
        self, flow: Mapping[str, Any], callback_params: Mapping[str, str], redirect_uri: str
    ) -> TokenSet:
        return (await self.complete_sign_in(flow, callback_params, redirect_uri))[0]

    async def complete_sign_in(
        self, flow: Mapping[str, Any], callback_params: Mapping[str, str], redirect_uri: str
    ) -> tuple[TokenSet, str | None]:
        """The tokens, and the account's display name from the ID token (``profile`` scope)."""
        if flow.get("redirect_uri") and flow["redirect_uri"] != redirect_uri:
            raise AuthorizationFailedError("redirect_uri differs from the one the flow began with")
        if callback_params.get("error"):
            raise AuthorizationFailedError(f"authorization refused: {callback_params['error']}")
        expected_state = flow.get("state")
        if not expected_state or not secrets.compare_digest(str(callback_params.get("state") or ""), str(expected_state)):
            raise AuthorizationFailedError("state does not match the flow")
        code = callback_params.get("code")
        verifier = flow.get("code_verifier")
        if not code or not isinstance(verifier, str):
            raise AuthorizationFailedError("the callback carries no authorization code")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "code_verifier": verifier,
        }
        try:
            async with self._http() as http:
                response = await http.post(self.token_uri, data=form, headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise ProviderError(f"token endpoint unreachable: {type(exc).__name__}") from exc
        try:
            result = response.json()
        except ValueError:
            result = None
        if response.status_code != 200 or not isinstance(result, dict) or "access_token" not in result:
            error = result.get("error") if isinstance(result, dict) else None
            raise AuthorizationFailedError(f"code redemption failed: {error or response.status_code}")
        tokens = token_set_of(result)
        if tokens.scope is not None and GMAIL_SCOPE not in tokens.scope.split():
            raise AuthorizationFailedError("the Gmail permission was not granted")
        return tokens, self._display_name(result.get("id_token"))

    def _display_name(self, id_token: Any) -> str | None:
        """The ``name`` claim, for display only. The ID token came straight from the token
        endpoint over TLS, which OpenID Connect accepts in place of a signature check
        (Core 3.1.3.7); its audience must still be us. Anything odd: no name."""
        if not isinstance(id_token, str):
            return None
        try:
            claims = jwt.decode(id_token, options={"verify_signature": False, "verify_exp": False})
        except jwt.PyJWTError:
            return None
        name = claims.get("name")
        if claims.get("aud") != self._client_id or not isinstance(name, str) or not name.strip():
            return None
        return name.strip()[:200]

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=self._verify, timeout=self._timeout, transport=self._http_transport)

    # ---- refresh (google-auth, in a worker thread)

    def _transport(self) -> google.auth.transport.requests.Request:
        if self._session is None:
            self._session = make_requests_session(self._ca_bundle)
        return google.auth.transport.requests.Request(session=self._session)

    def credentials(self, refresh_token: str, access_token: str | None = None) -> Credentials:
        return Credentials(
            token=access_token,
            refresh_token=refresh_token,
            token_uri=self.token_uri,
            client_id=self._client_id,
            client_secret=self._client_secret,
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        credentials = self.credentials(refresh_token)
        transport = self._transport()

        def run() -> None:
            credentials.refresh(transport)

        try:
            await asyncio.to_thread(run)
        except google.auth.exceptions.RefreshError as exc:
            error = _oauth_error_of(exc)
            if error in REVOKED_ERRORS:
                raise AuthRevokedError(f"refresh refused: {error}") from exc
            raise ProviderError(f"token refresh failed: {error or 'unknown error'}") from exc
        except (google.auth.exceptions.TransportError, requests.RequestException) as exc:
            raise ProviderError(f"token endpoint unreachable: {type(exc).__name__}") from exc
        if not credentials.token:
            raise ProviderError("token refresh returned no access token")
        expiry = credentials.expiry
        if expiry is not None and expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)  # google-auth keeps naive UTC
        scopes = credentials.granted_scopes
        return TokenSet(
            access_token=credentials.token,
            refresh_token=credentials.refresh_token or refresh_token,
            expires_at=expiry,
            scope=" ".join(scopes) if scopes else None,
        )

    # ---- revocation

    async def revoke(self, token: str) -> bool:
        """Best effort: True when Google confirmed (or the token was already invalid)."""
        try:
            async with self._http() as http:
                response = await http.post(self.revoke_uri, data={"token": token})
        except httpx.TransportError as exc:
            log.info("token revocation failed: %s", type(exc).__name__)
            return False
        if response.status_code == 200:
            return True
        # 400 invalid_token: already revoked or expired - the goal is reached.
        return response.status_code == 400 and "invalid_token" in response.text

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _oauth_error_of(exc: google.auth.exceptions.RefreshError) -> str | None:
    """The OAuth ``error`` code of a google-auth RefreshError: ``args[1]`` holds the
    token endpoint's JSON; older versions only have the message text."""
    if len(exc.args) > 1 and isinstance(exc.args[1], Mapping):
        error = exc.args[1].get("error")
        if isinstance(error, str):
            return error
    text = str(exc.args[0]) if exc.args else ""
    for code in ("invalid_grant", "invalid_client", "unauthorized_client", "invalid_request"):
        if code in text:
            return code
    return None
