"""The Gmail API over ``httpx``: one authenticated HTTP/1.1 client per mailbox.

What this layer owns, so that sync, send and watch never repeat it:

- **URLs.** ``{gmail_base_url}/gmail/v1/users/me/<path>``; batches go to
  ``{gmail_base_url}/batch/gmail/v1``.
- **Tokens.** The access token is refreshed shortly before it expires, or once after
  a ``401``; refreshes are coalesced behind one lock and the new ``TokenSet`` is
  handed to ``on_tokens_refreshed`` (persisted) *before* it is used.
- **Quota.** Every call declares its cost in quota units; the ``QuotaPacer`` keeps the
  client under the per-user budget. ``429`` and ``403`` ``rateLimitExceeded`` /
  ``userRateLimitExceeded`` (and ``5xx`` for idempotent calls) are retried after
  ``Retry-After`` - or the "Retry after <time>" Gmail writes in the error message, or
  an exponential backoff - for a bounded number of attempts, then
  ``ThrottledError(retry_after)`` lets the job queue defer.
- **Batches.** ``get_many`` fetches up to 50 messages per batch request and retries
  only the inner requests that were throttled.
- **Errors.** ``404`` -> ``NotFoundError``; a grant that cannot be refreshed, a ``401``
  after a refresh, or a token without the Gmail scope -> ``AuthRevokedError``;
  anything else -> ``GmailError``.
- **Idempotency.** ``messages.send`` is never replayed once its bytes may have
  reached Google (transport errors after connect, ``5xx``): only refusals that
  certainly did not send (``429``/rate-limit ``403``, connect errors) are retried.

The token, limit and retry machinery is shared with the Graph client
(``sync_engine.providers.http_support``); this module says what Gmail's answers mean.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from sync_engine.domain import AuthRevokedError, NotFoundError, ProviderError, ThrottledError, TokenSet
from sync_engine.providers.gmail import batch
from sync_engine.providers.gmail.quota import BATCH_ADVISED, BATCH_MAX, QuotaPacer
from sync_engine.providers.http_support import (
    REFRESH_MARGIN,
    MailboxHttpClient,
    Refresher,
    Retry,
    Sleep,
    TokensRefreshed,
    jittered_backoff,
    json_or_none,
    make_ssl_context,
    parse_retry_after,
)

log = logging.getLogger(__name__)

MAX_CONCURRENT_REQUESTS = 4
SERVER_ERRORS = frozenset({500, 502, 503, 504})
RATE_LIMIT_REASONS = frozenset({"ratelimitexceeded", "userratelimitexceeded", "quotaexceeded", "resource_exhausted"})
SCOPE_REASONS = frozenset({"insufficientpermissions", "access_token_scope_insufficient"})
_RETRY_AFTER_IN_MESSAGE = re.compile(r"retry after (\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)", re.I)


class GmailError(ProviderError):
    """A Gmail error response not mapped to a more specific domain error."""

    def __init__(self, status: int, reason: str | None, message: str) -> None:
        super().__init__(f"Gmail {status} {reason or ''}: {message}".strip())
        self.status = status
        self.reason = reason


# ---- pure helpers


def retry_after_in_message(message: str | None, *, now: datetime | None = None) -> float | None:
    """Gmail's quota errors say "User-rate limit exceeded.  Retry after 2024-05-01T10:00:03.528Z"."""
    if not message:
        return None
    match = _RETRY_AFTER_IN_MESSAGE.search(message)
    if match is None:
        return None
    text = match.group(1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(slots=True)
class ErrorInfo:
    reason: str | None
    message: str


def error_info(body: Any, text: str = "") -> ErrorInfo:
    """``error.errors[0].reason`` (or ``error.status``) and ``error.message`` of a Google
    error body, tolerating junk and OAuth-style ``{"error": "..."}`` bodies."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            reason = None
            errors = err.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
                reason = errors[0].get("reason")
            if not isinstance(reason, str) or not reason:
                status = err.get("status")
                reason = status if isinstance(status, str) else None
            return ErrorInfo(reason, str(err.get("message") or "")[:500])
        if isinstance(err, str):
            return ErrorInfo(err, str(body.get("error_description") or "")[:500])
    return ErrorInfo(None, (text or "")[:200])


def is_rate_limited(status: int, info: ErrorInfo) -> bool:
    if status == 429:
        return True
    return status == 403 and (info.reason or "").lower() in RATE_LIMIT_REASONS


def backoff(attempt: int, *, base: float = 1.0, cap: float = 32.0) -> float:
    """Exponential backoff with jitter (Google's advice for 429/5xx without Retry-After)."""
    return jittered_backoff(attempt, base=base, cap=cap, jitter=0.25)


def quote_id(value: str) -> str:
    return quote(value, safe="")


class GmailClient(MailboxHttpClient):
    """Authenticated Gmail requests for one mailbox (see the module docstring)."""

    service = "Gmail"
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
        pacer: QuotaPacer | None = None,
        max_attempts: int = 6,
        max_wait: float = 65.0,
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
        self._base_path = urlsplit(self.base_url).path.rstrip("/")
        self.pacer = pacer or QuotaPacer(sleep=sleep or asyncio.sleep)
        self.throttled_responses = 0  # 429/rate-limit answers seen (metrics, tests)

    @property
    def units_spent(self) -> int:
        return self.pacer.spent

    # ---- URLs

    def user_url(self, path: str) -> str:
        return f"{self.base_url}/gmail/v1/users/me/{path.lstrip('/')}"

    def upload_url(self, path: str) -> str:
        """The media upload URI of a user method (``messages.send`` of large messages)."""
        return f"{self.base_url}/upload/gmail/v1/users/me/{path.lstrip('/')}"

    def user_path(self, path: str) -> str:
        """The absolute path of a user resource, as written inside a batch."""
        return f"{self._base_path}/gmail/v1/users/me/{path.lstrip('/')}"

    @property
    def batch_url(self) -> str:
        return f"{self.base_url}/batch/gmail/v1"

    # ---- requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        cost: int,
        params: Mapping[str, Any] | Sequence[tuple[str, str]] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        url: str | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One Gmail call with auth, quota, retries and error mapping; returns the 2xx
        response. ``path`` is relative to ``users/me`` unless ``url`` is given."""
        method = method.upper()
        safe_to_replay = idempotent if idempotent is not None else method in ("GET", "PUT", "DELETE")
        return await self._send(
            method,
            url or self.user_url(path),
            replayable=safe_to_replay,
            headers=headers or {},
            before_send=lambda: self.pacer.acquire(cost),
            params=params,
            json=json,
            content=content,
        )

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt)

    def _retry_of(self, response: httpx.Response, attempt: int, replayable: bool) -> Retry | None:
        status = response.status_code
        info = error_info(json_or_none(response), response.text)
        limited = is_rate_limited(status, info)
        if not (limited or (status in SERVER_ERRORS and replayable)):
            return None
        wait = self._wait_for(response.headers.get("Retry-After"), info, attempt)
        if limited:
            self.throttled_responses += 1
            return Retry(wait, pause=self.pacer.pause)  # the next acquire waits; so do concurrent callers
        return Retry(wait)

    def _error_of(self, response: httpx.Response) -> Exception:
        return self.error_for(response.status_code, error_info(json_or_none(response), response.text))

    @staticmethod
    def _wait_for(retry_after: str | None, info: ErrorInfo, attempt: int) -> float:
        wait = parse_retry_after(retry_after)
        if wait is None:
            wait = retry_after_in_message(info.message)
        return backoff(attempt) if wait is None else wait

    @staticmethod
    def error_for(status: int, info: ErrorInfo) -> ProviderError:
        reason = (info.reason or "").lower()
        if status == 401:
            return AuthRevokedError(f"Gmail still answers 401 after a token refresh ({info.reason})")
        if status == 403 and reason in SCOPE_REASONS:
            return AuthRevokedError("the grant lacks the Gmail scope: the user must consent again")
        if status == 404:
            return NotFoundError(f"Gmail 404: {info.message}".strip())
        return GmailError(status, info.reason, info.message)

    # ---- conveniences

    async def get_json(self, path: str, *, cost: int, params: Any = None) -> dict[str, Any]:
        return _json_object(await self.request("GET", path, cost=cost, params=params))

    async def post_json(self, path: str, body: Any, *, cost: int, idempotent: bool = False) -> dict[str, Any]:
        response = await self.request("POST", path, cost=cost, json=body, idempotent=idempotent)
        return _json_object(response) if response.content.strip() else {}

    # ---- batches

    async def get_many(
        self, paths: Sequence[str], *, cost_each: int, batch_size: int = BATCH_ADVISED
    ) -> list[dict[str, Any] | None]:
        """GET many user resources (``messages/ID?format=full``...) through the batch
        endpoint, ``batch_size`` at a time. Returns the JSON of each, ``None`` for a 404.
        Throttled or failed inner requests are retried (bounded), alone."""
        batch_size = max(1, min(batch_size, BATCH_MAX))
        results: list[dict[str, Any] | None] = []
        for start in range(0, len(paths), batch_size):
            results.extend(await self._one_batch(paths[start : start + batch_size], cost_each))
        return results

    async def _one_batch(self, paths: Sequence[str], cost_each: int) -> list[dict[str, Any] | None]:
        results: dict[int, dict[str, Any] | None] = {}
        pending = list(range(len(paths)))
        refreshed = False
        attempt = 0
        while pending:
            attempt += 1
            token_used = self.tokens.access_token
            if len(pending) == 1:
                inner = await self._single(paths[pending[0]], cost_each)
                answers = [inner]
            else:
                answers = await self._post_batch([paths[i] for i in pending], cost_each)
            retry: list[int] = []
            waits: list[float] = []
            unauthorized = False
            for index, answer in zip(pending, answers, strict=True):
                info = error_info(answer.body, answer.text)
                if answer.status < 300:
                    if not isinstance(answer.body, dict):
                        raise ProviderError("Gmail batch item answered with a non-object body")
                    results[index] = answer.body
                elif answer.status == 404:
                    results[index] = None
                elif answer.status == 401:
                    unauthorized = True
                    retry.append(index)
                elif is_rate_limited(answer.status, info) or answer.status in SERVER_ERRORS:
                    if is_rate_limited(answer.status, info):
                        self.throttled_responses += 1
                    retry.append(index)
                    waits.append(self._wait_for(answer.header("Retry-After"), info, attempt))
                else:
                    raise self.error_for(answer.status, info)
            pending = retry
            if not pending:
                break
            if unauthorized:
                if refreshed:
                    raise AuthRevokedError("Gmail batch items still answer 401 after a token refresh")
                refreshed = True
                await self._refresh(token_used)
                if not waits:
                    continue
            wait = max(waits) if waits else backoff(attempt)
            if attempt >= self._max_attempts or wait > self._max_wait:
                raise ThrottledError(wait, f"Gmail batch items still throttled after {attempt} attempt(s)")
            log.info("gmail batch: %d of %d items throttled, retrying in %.3fs", len(pending), len(paths), wait)
            self.pacer.pause(wait)  # the next acquire waits it out
        return [results[i] for i in range(len(paths))]

    async def _single(self, path: str, cost: int) -> batch.InnerResponse:
        """A lone request needs no batch envelope (and a 404 is an answer, not an error)."""
        try:
            response = await self.request("GET", path, cost=cost)
        except NotFoundError:
            return batch.InnerResponse(status=404)
        return batch.InnerResponse(status=response.status_code, body=json_or_none(response), text=response.text)

    async def _post_batch(self, paths: Sequence[str], cost_each: int) -> list[batch.InnerResponse]:
        boundary = batch.new_boundary()
        body = batch.encode([batch.InnerRequest("GET", self.user_path(p)) for p in paths], boundary)
        response = await self.request(
            "POST",
            "",
            url=self.batch_url,
            cost=cost_each * len(paths),
            content=body,
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            idempotent=True,  # a batch of GETs
        )
        try:
            return batch.decode(response.text, response.headers.get("Content-Type"), len(paths))
        except batch.BatchFormatError as exc:
            raise ProviderError(f"unreadable Gmail batch response: {exc}") from exc


def path_with_query(path: str, params: Sequence[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def message_path(message_id: str, fmt: str = "full") -> str:
    return path_with_query(f"messages/{quote_id(message_id)}", [("format", fmt)])


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = json_or_none(response)
    if not isinstance(body, dict):
        raise ProviderError(f"Gmail answered {response.status_code} with a body that is not a JSON object")
    return body


__all__ = [
    "REFRESH_MARGIN",
    "GmailClient",
    "GmailError",
    "backoff",
    "error_info",
    "make_ssl_context",
    "message_path",
    "parse_retry_after",
    "quote_id",
    "retry_after_in_message",
]
