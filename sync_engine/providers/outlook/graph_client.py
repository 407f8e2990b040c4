"""Microsoft Graph over ``httpx``: one authenticated HTTP/1.1 client per mailbox.

What this layer owns, so that the callers (sync, send, watch) never repeat it:

- **Headers.** Every request carries ``Prefer: IdType="ImmutableId"`` (message ids
  survive moves between folders, and a sent draft keeps its id in Sent Items).
  Extra ``Prefer`` values are joined into the same header: some servers read only
  the first ``Prefer`` header.
- **Tokens.** The access token is refreshed shortly before it expires, or once
  after a ``401``; refreshes are coalesced behind one ``asyncio.Lock`` and the new
  ``TokenSet`` is handed to ``on_tokens_refreshed`` (persisted) *before* it is used.
- **Limits.** Graph allows 4 concurrent requests per app and mailbox: a semaphore
  per client enforces it (it is not held while sleeping). ``429``/``503`` (and
  ``502``/``504``) honour ``Retry-After`` - seconds, possibly fractional
  (``2.128``), or an HTTP date - for a bounded number of attempts, then
  ``ThrottledError(retry_after)`` is raised for the job queue to defer.
- **Errors.** ``404`` -> ``NotFoundError``; ``410``/``SyncStateNotFound``/
  ``resyncRequired``/``syncStateInvalid`` -> ``CursorExpiredError``; a grant that
  cannot be refreshed -> ``AuthRevokedError``; anything else -> ``GraphError``.
- **Idempotency.** Transport failures are retried only for idempotent methods or
  when the connection was never established: a ``POST .../send`` is never replayed
  after its bytes may have reached the server.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from sync_engine.domain import (
    AuthRevokedError,
    CursorExpiredError,
    NotFoundError,
    ProviderError,
    ThrottledError,
    TokenSet,
)

log = logging.getLogger(__name__)

IMMUTABLE_ID_PREFER = 'IdType="ImmutableId"'
MAX_CONCURRENT_REQUESTS = 4  # Graph: 4 concurrent requests per app and mailbox
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
CURSOR_EXPIRED_CODES = frozenset(
    {"syncstatenotfound", "resyncrequired", "syncstateinvalid", "invaliddeltatoken"}
)
# Refresh this long before the access token's announced expiry.
REFRESH_MARGIN = timedelta(minutes=2)

Refresher = Callable[[str], Awaitable[TokenSet]]
TokensRefreshed = Callable[[TokenSet], Awaitable[None]]


class GraphError(ProviderError):
    """A Graph error response not mapped to a more specific domain error."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"Graph {status} {code or ''}: {message}".strip())
        self.status = status
        self.code = code


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a (possibly fractional) number or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def error_of(response: httpx.Response) -> tuple[str | None, str]:
    """The ``error.code`` and ``error.message`` of a Graph error body, tolerating junk."""
    try:
        body = response.json()
    except ValueError:
        return None, (response.text or "")[:200]
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            code = err.get("code")
            return (str(code) if code is not None else None), str(err.get("message") or "")[:500]
        if isinstance(err, str):  # OAuth-style {"error": "...", "error_description": ...}
            return err, str(body.get("error_description") or "")[:500]
    return None, ""


def make_ssl_context(ca_bundle: str | None) -> ssl.SSLContext | bool:
    """Trust ``ca_bundle`` (the sandbox's local CA) when set, else the system store."""
    if not ca_bundle:
        return True
    return ssl.create_default_context(cafile=ca_bundle)


class GraphClient:
    """Authenticated Graph requests for one mailbox (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSet,
        *,
        refresher: Refresher | None,
        on_tokens_refreshed: TokensRefreshed | None,
        verify: ssl.SSLContext | bool = True,
        max_attempts: int = 4,
        max_wait: float = 30.0,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        base = urlsplit(self.base_url)
        self._origin = (base.scheme, base.netloc.lower())
        self._tokens = tokens
        self._refresher = refresher
        self._on_tokens_refreshed = on_tokens_refreshed
        self._refresh_lock = asyncio.Lock()
        self._semaphore = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._http = httpx.AsyncClient(
            verify=verify,
            http1=True,
            http2=False,
            timeout=timeout or httpx.Timeout(30.0, connect=10.0),
            limits=httpx.Limits(
                max_connections=MAX_CONCURRENT_REQUESTS * 2,
                max_keepalive_connections=MAX_CONCURRENT_REQUESTS,
            ),
            headers={"Accept": "application/json"},
            follow_redirects=False,
            transport=transport,
        )

    @property
    def tokens(self) -> TokenSet:
        return self._tokens

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- URLs

    def url(self, path_or_url: str) -> str:
        """An absolute URL for a Graph path, or a Graph-issued link checked to point at
        our Graph origin (a nextLink/deltaLink must never carry our token elsewhere)."""
        if path_or_url.startswith(("https://", "http://")):
            link = urlsplit(path_or_url)
            if (link.scheme, link.netloc.lower()) != self._origin:
                raise ProviderError("Graph link points outside the configured Graph origin")
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    # ---- tokens

    def _token_is_stale(self) -> bool:
        expires_at = self._tokens.expires_at
        if expires_at is None:
            return False
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        return datetime.now(UTC) + REFRESH_MARGIN >= expires_at

    async def _refresh(self, stale_access_token: str) -> None:
        """Refresh unless another task already replaced ``stale_access_token``."""
        async with self._refresh_lock:
            if self._tokens.access_token != stale_access_token:
                return  # coalesced: someone refreshed while we waited
            if self._refresher is None or not self._tokens.refresh_token:
                raise AuthRevokedError("access token expired and no refresh token is available")
            fresh = await self._refresher(self._tokens.refresh_token)
            if self._on_tokens_refreshed is not None:
                await self._on_tokens_refreshed(fresh)
            self._tokens = fresh

    async def ensure_fresh_token(self) -> str:
        if self._token_is_stale():
            await self._refresh(self._tokens.access_token)
        return self._tokens.access_token

    # ---- requests

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        prefer: tuple[str, ...] = (),
    ) -> httpx.Response:
        """Send one Graph request with auth, limits, retries and error mapping.
        Returns the (2xx) response."""
        method = method.upper()
        url = self.url(path_or_url)
        prefer_header = ", ".join((IMMUTABLE_ID_PREFER, *prefer))
        refreshed_after_401 = False
        attempt = 0
        while True:
            attempt += 1
            access_token = await self.ensure_fresh_token()
            req_headers = {"Authorization": f"Bearer {access_token}", "Prefer": prefer_header}
            if headers:
                req_headers.update(headers)
            try:
                async with self._semaphore:
                    response = await self._http.request(
                        method, url, params=params, json=json, content=content, headers=req_headers
                    )
            except httpx.TransportError as exc:
                safe = method in IDEMPOTENT_METHODS or isinstance(
                    exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                if safe and attempt < self._max_attempts:
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise ProviderError(f"Graph transport error: {type(exc).__name__}") from exc

            status = response.status_code
            if status < 300:
                return response
            if status == 401 and not refreshed_after_401:
                # Expired/invalid token (InvalidAuthenticationToken): refresh once, retry.
                refreshed_after_401 = True
                attempt -= 1  # the retry after a refresh is not a throttling attempt
                await self._refresh(access_token)
                continue
            if status in RETRYABLE_STATUSES:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                if wait is None:
                    wait = self._backoff(attempt)
                if attempt >= self._max_attempts or wait > self._max_wait:
                    raise ThrottledError(wait, f"Graph {status} after {attempt} attempt(s)")
                log.info("graph %s %s: %s, retrying in %.3fs", method, _path_of(url), status, wait)
                await asyncio.sleep(wait)
                continue
            self._raise_for(response)

    def _raise_for(self, response: httpx.Response) -> None:
        status = response.status_code
        code, message = error_of(response)
        lowered = (code or "").lower()
        if status == 410 or lowered in CURSOR_EXPIRED_CODES:
            raise CursorExpiredError(f"Graph {status} {code or ''}: {message}".strip())
        if status == 401:
            raise AuthRevokedError(f"Graph still answers 401 after a token refresh ({code})")
        if status == 404:
            raise NotFoundError(f"Graph 404 {code or ''}: {message}".strip())
        raise GraphError(status, code, message)

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.8 + 0.4 * random.random())

    async def upload_chunk(self, upload_url: str, chunk: bytes, content_range: str) -> httpx.Response:
        """PUT one byte range to an attachment upload session. The ``uploadUrl`` is
        pre-authenticated (and may be on another host): no bearer token is sent."""
        if not upload_url.startswith("https://") and not upload_url.startswith(self.base_url):
            raise ProviderError("upload session URL is not https")
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._semaphore:
                    response = await self._http.put(
                        upload_url,
                        content=chunk,
                        headers={"Content-Range": content_range, "Content-Type": "application/octet-stream"},
                    )
            except httpx.TransportError as exc:  # PUT of a byte range is idempotent
                if attempt < self._max_attempts:
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise ProviderError(f"upload transport error: {type(exc).__name__}") from exc
            if response.status_code < 300:
                return response
            if response.status_code in RETRYABLE_STATUSES:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                wait = self._backoff(attempt) if wait is None else wait
                if attempt >= self._max_attempts or wait > self._max_wait:
                    raise ThrottledError(wait, f"upload {response.status_code}")
                await asyncio.sleep(wait)
                continue
            self._raise_for(response)

    # ---- conveniences

    async def get_json(
        self, path_or_url: str, *, params: Mapping[str, str] | None = None, prefer: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        response = await self.request("GET", path_or_url, params=params, prefer=prefer)
        return _json_object(response)

    async def post_json(self, path: str, body: Any = None) -> dict[str, Any]:
        response = await self.request("POST", path, json=body if body is not None else {})
        return _json_object(response) if response.content else {}

    async def patch_json(self, path: str, body: Any) -> dict[str, Any]:
        response = await self.request("PATCH", path, json=body)
        return _json_object(response) if response.content else {}


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise ProviderError(f"Graph answered {response.status_code} with a non-JSON body") from exc
    if not isinstance(body, dict):
        raise ProviderError("Graph answered with a JSON value that is not an object")
    return body


def _path_of(url: str) -> str:
    return urlsplit(url).path  # never log query strings (delta/skip tokens)
