"""Gmail push via Cloud Pub/Sub: authenticate the OIDC token, decode the notice.

A push subscription with authentication POSTs ::

    Authorization: Bearer <OIDC JWT signed by Google>
    {"message": {"data": base64({"emailAddress": ..., "historyId": ...}),
                 "messageId": ..., "publishTime": ...},
     "subscription": "projects/.../subscriptions/..."}

The JWT is verified with ``google.oauth2.id_token.verify_token`` (signature against
the certs at ``google_certs_url``, expiry, audience = our push endpoint), then its
claims: ``iss`` is Google's accounts issuer, ``email`` is the service account the
subscription pushes as and ``email_verified`` is true. Anything else - no token, a
token of our own making, expired, another audience or account, a body that is not
such an envelope - raises ``PushRejected`` and nothing is done.

google-auth fetches the certs on every verification; ``CachingRequest`` keeps them
for their ``Cache-Control: max-age`` (bounded), and a token naming an unknown key id
triggers one early refetch (Google rotates keys), at most once a minute.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import google.auth.transport
import google.auth.transport.requests
from google.oauth2 import id_token

from sync_engine.domain import PushKind, PushNotice
from sync_engine.providers.base import PushRejected
from sync_engine.providers.gmail.mapping import history_id_of
from sync_engine.providers.http_support import make_requests_session
from sync_engine.providers.provider_support import load_push_json
from sync_engine.rules.addresses import normalize_email

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
MAX_BODY_BYTES = 64 * 1024
DEFAULT_CERTS_TTL = 300.0
MAX_CERTS_TTL = 6 * 3600.0
MIN_REFETCH_INTERVAL = 60.0
CLOCK_SKEW_SECONDS = 10
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.I)


class _CachedResponse(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, dict(headers), data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class CachingRequest(google.auth.transport.Request):
    """A google-auth transport that caches successful GETs of the certs URL."""

    def __init__(
        self, inner: google.auth.transport.Request, certs_url: str, *, clock: Any = time.monotonic
    ) -> None:
        self._inner = inner
        self._certs_url = certs_url
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _CachedResponse | None = None
        self._expires = 0.0
        self._fetched_at = float("-inf")
        self.fetches = 0

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):  # type: ignore[no-untyped-def]
        if url != self._certs_url or method.upper() != "GET":
            return self._inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        with self._lock:
            now = self._clock()
            if self._cached is not None and now < self._expires:
                return self._cached
            response = self._inner(url, method="GET", headers=headers, timeout=timeout or 10, **kwargs)
            self.fetches += 1
            self._fetched_at = now
            if response.status == 200:
                self._cached = _CachedResponse(response.status, response.headers, response.data)
                self._expires = now + _ttl_of(response.headers)
                return self._cached
            return response

    def invalidate(self) -> bool:
        """Drop the cached certs unless they were fetched within the last minute."""
        with self._lock:
            if self._clock() - self._fetched_at < MIN_REFETCH_INTERVAL:
                return False
            self._cached = None
            self._expires = 0.0
            return True


def _ttl_of(headers: Mapping[str, str]) -> float:
    control = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
    match = _MAX_AGE.search(control or "")
    if match is None:
        return DEFAULT_CERTS_TTL
    return float(min(int(match.group(1)), MAX_CERTS_TTL))


class PushVerifier:
    def __init__(
        self,
        *,
        audience: str,
        service_account: str,
        certs_url: str,
        ca_bundle: str | None,
        transport: google.auth.transport.Request | None = None,
    ) -> None:
        self.audience = audience
        self.service_account = service_account.strip().lower()
        self.certs_url = certs_url
        self._ca_bundle = ca_bundle
        self._transport = transport
        self._request: CachingRequest | None = None
        self._init_lock = threading.Lock()

    @property
    def request(self) -> CachingRequest:
        """The caching transport, built on first use (no network at construction)."""
        with self._init_lock:
            if self._request is None:
                inner = self._transport or google.auth.transport.requests.Request(
                    session=make_requests_session(self._ca_bundle)
                )
                self._request = CachingRequest(inner, self.certs_url)
            return self._request

    async def parse(self, headers: Mapping[str, str], body: bytes) -> list[PushNotice]:
        token = bearer_token(headers)
        claims = await asyncio.to_thread(self._verify, token)
        self.check_claims(claims)
        return [notice_of(body)]

    def _verify(self, token: str) -> Mapping[str, Any]:
        try:
            return self._verify_once(token)
        except PushRejected as first:
            cause = str(first.__cause__ or "").lower()
            unknown_key = "not found" in cause or "unable to find" in cause
            if unknown_key and self.request.invalidate():
                return self._verify_once(token)  # keys rotated since we cached them
            raise

    def _verify_once(self, token: str) -> Mapping[str, Any]:
        try:
            return id_token.verify_token(
                token,
                self.request,
                audience=self.audience,
                certs_url=self.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except Exception as exc:  # google-auth / PyJWT raise many types; all mean "not authentic"
            raise PushRejected(f"push token rejected: {type(exc).__name__}") from exc

    def check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise PushRejected("push token not issued by Google")
        if "exp" not in claims:
            raise PushRejected("push token without expiry")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise PushRejected("push token for another audience")
        email = claims.get("email")
        if not isinstance(email, str) or email.strip().lower() != self.service_account:
            raise PushRejected("push token of another service account")
        verified = claims.get("email_verified")
        if verified is not True and str(verified).lower() != "true":
            raise PushRejected("push token with an unverified email")


def bearer_token(headers: Mapping[str, str]) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if not isinstance(value, str):
        raise PushRejected("push without an Authorization header")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or token.count(".") != 2:
        raise PushRejected("push without a bearer JWT")
    return token


def decode_data(data: str) -> Mapping[str, Any]:
    """Pub/Sub ``message.data``: base64 (standard or URL-safe, padded or not) of JSON."""
    cleaned = re.sub(r"\s+", "", data).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        decoded = base64.b64decode(cleaned, validate=True)
        payload = json.loads(decoded)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise PushRejected("push data is not base64 JSON") from exc
    if not isinstance(payload, Mapping):
        raise PushRejected("push data is not a JSON object")
    return payload


def notice_of(body: bytes) -> PushNotice:
    envelope = load_push_json(body, max_bytes=MAX_BODY_BYTES, what="push body")
    message = envelope.get("message") if isinstance(envelope, Mapping) else None
    data = message.get("data") if isinstance(message, Mapping) else None
    if not isinstance(data, str) or not data:
        raise PushRejected("push body has no message.data")
    payload = decode_data(data)
    address = payload.get("emailAddress")
    if not isinstance(address, str) or "@" not in address:
        raise PushRejected("push data has no emailAddress")
    history_id = history_id_of(payload.get("historyId"))
    if history_id is None:
        raise PushRejected("push data has no historyId")
    return PushNotice(kind=PushKind.CHANGED, address=normalize_email(address), history_id=history_id)
