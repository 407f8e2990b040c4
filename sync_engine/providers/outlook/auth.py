"""Microsoft identity platform sign-in and token refresh, through msal.

- One ``msal.ConfidentialClientApplication`` per provider object, built lazily on
  first use: msal fetches the authority's OpenID configuration in its constructor,
  and the factory must not do network I/O. Instance discovery is off, so a
  non-Microsoft host (the loopback sandbox) is accepted as the authority.
- msal is synchronous (requests): every call runs in ``asyncio.to_thread``.
- TLS: msal's ``verify=`` is overridden by ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``
  (requests merges the environment over the session). When ``settings.ca_bundle``
  is set we hand msal a session that pins it, so an unrelated bundle in the
  environment cannot break the sandbox, nor widen production's trust.
- msal's token cache would keep every user's tokens in this process forever; our
  tokens live encrypted in the database, so the cache given to msal drops them.
- ``response_mode=form_post``: the identity platform hands the code back in a POST
  body rather than the query string, so it never sits in the browser's history, in
  a Referer or in access logs (Microsoft's and RFC 9700's advice).
- Scopes are the short Graph form (``Mail.ReadWrite``): the identity platform maps
  a bare scope to Microsoft Graph. msal adds ``openid profile offline_access``
  itself (and raises if we pass them).
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msal
import requests

from sync_engine.domain import AuthorizationRequest, AuthRevokedError, ProviderError, TokenSet
from sync_engine.providers.http_support import make_requests_session

# The callback route (GET /oauth/{provider}/callback) reads the code from the query
# string; msal nags for response_mode=form_post on every flow. PKCE and single-use
# codes cover what form_post adds; switching needs a POST callback route first.
warnings.filterwarnings("ignore", message=r"response_mode='form_post' is recommended", category=UserWarning)

GRAPH_SCOPES: tuple[str, ...] = ("Mail.ReadWrite", "Mail.Send", "User.Read")

# OAuth errors meaning the grant is gone for good: the user has to sign in again.
REVOKED_ERRORS = frozenset(
    {"invalid_grant", "interaction_required", "consent_required", "login_required", "unauthorized_client"}
)


class AuthorizationFailedError(ProviderError):
    """The sign-in could not be completed (denied consent, bad state, bad code)."""


class _DiscardingTokenCache(msal.TokenCache):
    """msal insists on a cache; ours persists nothing (tokens are stored encrypted by
    the services, one row per connection)."""

    def add(self, event: dict[str, Any], **kwargs: Any) -> None:
        return None


class MsalAuth:
    def __init__(
        self,
        *,
        authority: str,
        client_id: str,
        client_secret: str,
        ca_bundle: str | None,
        timeout: float = 30.0,
    ) -> None:
        self._authority = authority
        self._client_id = client_id
        self._client_secret = client_secret
        self._ca_bundle = ca_bundle
        self._timeout = timeout
        self._app: msal.ConfidentialClientApplication | None = None
        self._app_lock = threading.Lock()

    # ---- the msal application

    def _build_app(self) -> msal.ConfidentialClientApplication:
        session = make_requests_session(self._ca_bundle)
        adapter = requests.adapters.HTTPAdapter(max_retries=1)
        session.mount("https://", adapter)
        original_request = session.request

        def request_with_timeout(method, url, **kwargs):  # type: ignore[no-untyped-def]
            kwargs.setdefault("timeout", self._timeout)
            return original_request(method, url, **kwargs)

        session.request = request_with_timeout  # type: ignore[method-assign]
        return msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=self._client_secret,
            authority=self._authority,
            http_client=session,
            instance_discovery=False,
            token_cache=_DiscardingTokenCache(),
        )

    def _app_sync(self) -> msal.ConfidentialClientApplication:
        with self._app_lock:
            if self._app is None:
                try:
                    self._app = self._build_app()
                except (requests.RequestException, ValueError) as exc:
                    raise ProviderError(f"identity platform unavailable: {type(exc).__name__}") from exc
            return self._app

    def close(self) -> None:
        """Release msal's pooled HTTPS connections (process shutdown, tests)."""
        with self._app_lock:
            if self._app is not None:
                self._app.http_client.close()
                self._app = None

    # ---- flows (async facade; msal runs in a worker thread)

    async def begin(self, redirect_uri: str, login_hint: str | None) -> AuthorizationRequest:
        def run() -> dict[str, Any]:
            return self._app_sync().initiate_auth_code_flow(
                list(GRAPH_SCOPES), redirect_uri=redirect_uri, login_hint=login_hint, response_mode="form_post"
            )

        flow = await asyncio.to_thread(run)
        return AuthorizationRequest(url=flow["auth_uri"], state=flow["state"], flow=dict(flow))

    async def complete(
        self, flow: Mapping[str, Any], callback_params: Mapping[str, str], redirect_uri: str
    ) -> TokenSet:
        flow_dict = dict(flow)
        if flow_dict.get("redirect_uri") and flow_dict["redirect_uri"] != redirect_uri:
            raise AuthorizationFailedError("redirect_uri differs from the one the flow began with")
        params = dict(callback_params)
        if params.get("error"):
            raise AuthorizationFailedError(f"authorization refused: {params['error']}")

        def run() -> dict[str, Any]:
            return self._app_sync().acquire_token_by_auth_code_flow(flow_dict, params)

        try:
            result = await asyncio.to_thread(run)
        except ValueError as exc:  # msal: state mismatch, missing code...
            raise AuthorizationFailedError(f"invalid authorization response: {exc}") from exc
        except requests.RequestException as exc:
            raise ProviderError(f"token endpoint unreachable: {type(exc).__name__}") from exc
        if "error" in result or "access_token" not in result:
            raise AuthorizationFailedError(f"code redemption failed: {result.get('error', 'no token')}")
        return token_set_of(result)

    async def refresh(self, refresh_token: str) -> TokenSet:
        def run() -> dict[str, Any]:
            return self._app_sync().acquire_token_by_refresh_token(refresh_token, list(GRAPH_SCOPES))

        try:
            result = await asyncio.to_thread(run)
        except requests.RequestException as exc:
            raise ProviderError(f"token endpoint unreachable: {type(exc).__name__}") from exc
        error = result.get("error")
        if error:
            if error in REVOKED_ERRORS:
                raise AuthRevokedError(f"refresh refused: {error}")
            raise ProviderError(f"token refresh failed: {error}")
        if "access_token" not in result:
            raise ProviderError("token refresh returned no access token")
        return token_set_of(result, previous_refresh_token=refresh_token)


def token_set_of(result: Mapping[str, Any], previous_refresh_token: str | None = None) -> TokenSet:
    """An msal token response -> TokenSet. A refresh response may omit the refresh
    token (then the previous one stays valid)."""
    expires_in = result.get("expires_in")
    try:
        seconds = int(expires_in) if expires_in is not None else None
    except (TypeError, ValueError):
        seconds = None
    scope = result.get("scope")
    if isinstance(scope, list | tuple):
        scope = " ".join(scope)
    return TokenSet(
        access_token=result["access_token"],
        refresh_token=result.get("refresh_token") or previous_refresh_token,
        expires_at=datetime.now(UTC) + timedelta(seconds=seconds) if seconds is not None else None,
        scope=scope if isinstance(scope, str) else None,
    )
