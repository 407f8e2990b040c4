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

The token, limit and retry machinery is shared with the Gmail client
(``sync_engine.providers.http_support``); this module says what Graph's answers mean.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
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
from sync_engine.providers.http_support import (
    REFRESH_MARGIN,
    MailboxHttpClient,
    Refresher,
    Retry,
    Sleep,
    TokensRefreshed,
    jittered_backoff,
    make_ssl_context,
    parse_retry_after,
)

log = logging.getLogger(__name__)

IMMUTABLE_ID_PREFER = 'IdType="ImmutableId"'
MAX_CONCURRENT_REQUESTS = 4  # Graph: 4 concurrent requests per app and mailbox
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
CURSOR_EXPIRED_CODES = frozenset(
    {"syncstatenotfound", "resyncrequired", "syncstateinvalid", "invaliddeltatoken"}
)


class GraphError(ProviderError):
    """A Graph error response not mapped to a more specific domain error."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"Graph {status} {code or ''}: {message}".strip())
        self.status = status
        self.code = code


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


class GraphClient(MailboxHttpClient):
    """Authenticated Graph requests for one mailbox (see the module docstring)."""

    service = "Graph"
    max_concurrent_requests = MAX_CONCURRENT_REQUESTS
    log = log

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
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__(
            base_url,
            tokens,
            refresher=refresher,
            on_tokens_refreshed=on_tokens_refreshed,
            verify=verify,
            max_attempts=max_attempts,
            max_wait=max_wait,
            timeout=timeout,
            transport=transport,
            sleep=sleep,
        )
        base = urlsplit(self.base_url)
        self._origin = (base.scheme, base.netloc.lower())

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
        prefer_header = ", ".join((IMMUTABLE_ID_PREFER, *prefer))
        return await self._send(
            method,
            self.url(path_or_url),
            replayable=method in IDEMPOTENT_METHODS,
            headers={"Prefer": prefer_header, **(headers or {})},
            params=params,
            json=json,
            content=content,
        )

    def _retry_of(self, response: httpx.Response, attempt: int, replayable: bool) -> Retry | None:
        if response.status_code not in RETRYABLE_STATUSES:
            return None
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return Retry(self._backoff(attempt) if wait is None else wait)

    def _error_of(self, response: httpx.Response) -> Exception:
        status = response.status_code
        code, message = error_of(response)
        lowered = (code or "").lower()
        if status == 410 or lowered in CURSOR_EXPIRED_CODES:
            return CursorExpiredError(f"Graph {status} {code or ''}: {message}".strip())
        if status == 401:
            return AuthRevokedError(f"Graph still answers 401 after a token refresh ({code})")
        if status == 404:
            return NotFoundError(f"Graph 404 {code or ''}: {message}".strip())
        return GraphError(status, code, message)

    def _backoff(self, attempt: int) -> float:
        return jittered_backoff(attempt, base=0.5, cap=8.0, jitter=0.2)

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
                    await self._sleep(self._backoff(attempt))
                    continue
                raise ProviderError(f"upload transport error: {type(exc).__name__}") from exc
            if response.status_code < 300:
                return response
            retry = self._retry_of(response, attempt, True)
            if retry is None:
                raise self._error_of(response)
            if attempt >= self._max_attempts or retry.wait > self._max_wait:
                raise ThrottledError(retry.wait, f"upload {response.status_code}")
            await self._sleep(retry.wait)

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



__all__ = [
    "REFRESH_MARGIN",
    "GraphClient",
    "GraphError",
    "error_of",
    "make_ssl_context",
    "parse_retry_after",
]
