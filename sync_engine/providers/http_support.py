"""HTTP plumbing shared by the provider clients (Microsoft Graph, the Gmail API).

What is the same for every provider lives here, so that each adapter keeps only
what is its own (which statuses are retryable, its error bodies, quota pacing):

- **Retry-After.** ``parse_retry_after`` reads seconds, possibly fractional
  (``2.128``), or an HTTP date; ``jittered_backoff`` stands in when there is none.
- **Tokens.** ``MailboxHttpClient`` refreshes the access token shortly before it
  expires, or once after a ``401``; refreshes are coalesced behind one
  ``asyncio.Lock`` and the new ``TokenSet`` is handed to ``on_tokens_refreshed``
  (persisted) *before* it is used.
- **Limits.** One semaphore per client bounds the requests in flight for the
  mailbox (it is not held while sleeping); the retry loop is bounded in attempts
  and in the longest wait it sleeps in process, beyond which
  ``ThrottledError(retry_after)`` lets the job queue defer.
- **Idempotency.** A transport failure is retried only when the request may be
  replayed, or when the connection was never established.
- **TLS.** ``make_ssl_context`` / ``PinnedCASession`` trust the configured CA
  bundle (the sandbox's local CA) and nothing the environment says instead.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests

from sync_engine.domain import AuthRevokedError, ProviderError, ThrottledError, TokenSet

# Refresh this long before the access token's announced expiry.
REFRESH_MARGIN = timedelta(minutes=2)
# Failures that prove the request never reached the server: always safe to retry.
NEVER_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

Refresher = Callable[[str], Awaitable[TokenSet]]
TokensRefreshed = Callable[[TokenSet], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


# ---- pure helpers


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


def jittered_backoff(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """``base * 2**(attempt-1)`` capped at ``cap``, times a factor in ``1 ± jitter``."""
    return min(cap, base * 2 ** (attempt - 1)) * ((1 - jitter) + 2 * jitter * random.random())


def make_ssl_context(ca_bundle: str | None) -> ssl.SSLContext | bool:
    """Trust ``ca_bundle`` (the sandbox's local CA) when set, else the system store."""
    if not ca_bundle:
        return True
    return ssl.create_default_context(cafile=ca_bundle)


class PinnedCASession(requests.Session):
    """A requests session whose ``verify`` is not overridden by the environment."""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        merged["verify"] = self.verify
        return merged


def make_requests_session(ca_bundle: str | None) -> requests.Session:
    """A requests session trusting ``ca_bundle`` only (the default store without one)."""
    if not ca_bundle:
        return requests.Session()
    session = PinnedCASession()
    session.verify = ca_bundle
    return session


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def path_of(url: str) -> str:
    return urlsplit(url).path  # never log query strings (delta/skip tokens)


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)  # looked up at call time


@dataclass(frozen=True, slots=True)
class Retry:
    """How to wait before retrying a refused request: sleep ``wait`` seconds, or hand
    the wait to ``pause`` (a pause every caller of the client honours)."""

    wait: float
    pause: Callable[[float], None] | None = None


# ---- the client


class MailboxHttpClient:
    """Authenticated requests for one mailbox: tokens, limits and the bounded retry loop.

    Subclasses name the service and say what a refused response means:
    ``_retry_of`` (retry, and how long to wait; ``None``: not retryable),
    ``_error_of`` (the exception for a final refusal) and ``_backoff``.
    Every wait of the retry loop goes through ``sleep`` (``asyncio.sleep`` unless given),
    so that tests can record the delays asked for instead of spending them.
    """

    service = "HTTP"  # names the provider in errors ("Graph", "Gmail")
    max_concurrent_requests = 4
    log = logging.getLogger(__name__)

    def __init__(
        self,
        base_url: str,
        tokens: TokenSet,
        *,
        refresher: Refresher | None,
        on_tokens_refreshed: TokensRefreshed | None,
        verify: ssl.SSLContext | bool,
        max_attempts: int,
        max_wait: float,
        timeout: httpx.Timeout | None,
        transport: httpx.AsyncBaseTransport | None,
        sleep: Sleep | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._refresher = refresher
        self._on_tokens_refreshed = on_tokens_refreshed
        self._refresh_lock = asyncio.Lock()
        self._semaphore = asyncio.Semaphore(self.max_concurrent_requests)
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._sleep: Sleep = sleep or _asyncio_sleep
        self._http = httpx.AsyncClient(
            verify=verify,
            http1=True,
            http2=False,
            timeout=timeout or httpx.Timeout(30.0, connect=10.0),
            limits=httpx.Limits(
                max_connections=self.max_concurrent_requests * 2,
                max_keepalive_connections=self.max_concurrent_requests,
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

    # ---- the retry loop

    async def _send(
        self,
        method: str,
        url: str,
        *,
        replayable: bool,
        headers: Mapping[str, str],
        before_send: Callable[[], Awaitable[None]] | None = None,
        **send: Any,
    ) -> httpx.Response:
        """Send with auth, the concurrency limit, bounded retries and error mapping;
        returns the 2xx response. ``send`` goes to ``httpx`` (params, json, content)."""
        refreshed_after_401 = False
        attempt = 0
        while True:
            attempt += 1
            access_token = await self.ensure_fresh_token()
            req_headers = {"Authorization": f"Bearer {access_token}", **headers}
            if before_send is not None:
                await before_send()
            try:
                async with self._semaphore:
                    response = await self._http.request(method, url, headers=req_headers, **send)
            except httpx.TransportError as exc:
                if (replayable or isinstance(exc, NEVER_SENT_ERRORS)) and attempt < self._max_attempts:
                    await self._sleep(self._backoff(attempt))
                    continue
                raise ProviderError(f"{self.service} transport error: {type(exc).__name__}") from exc

            status = response.status_code
            if status < 300:
                return response
            if status == 401 and not refreshed_after_401:
                # Expired/invalid token: refresh once, retry.
                refreshed_after_401 = True
                attempt -= 1  # the retry after a refresh is not a throttling attempt
                await self._refresh(access_token)
                continue
            retry = self._retry_of(response, attempt, replayable)
            if retry is None:
                raise self._error_of(response)
            wait = retry.wait
            if attempt >= self._max_attempts or wait > self._max_wait:
                raise ThrottledError(wait, f"{self.service} {status} after {attempt} attempt(s)")
            self.log.info("%s %s %s: %s, retrying in %.3fs", self.service.lower(), method, path_of(url), status, wait)
            if retry.pause is not None:
                retry.pause(wait)
            else:
                await self._sleep(wait)

    # ---- what subclasses decide

    def _backoff(self, attempt: int) -> float:
        raise NotImplementedError

    def _retry_of(self, response: httpx.Response, attempt: int, replayable: bool) -> Retry | None:
        raise NotImplementedError

    def _error_of(self, response: httpx.Response) -> Exception:
        raise NotImplementedError
