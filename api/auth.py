"""Who is calling: CRM-issued user JWTs and partner API keys.

Header formats:
- ``Authorization: Bearer <JWT>`` — claims ``sub`` (user id), ``sub_account_id``,
  ``role`` (``admin`` | ``user``), ``exp``; verified with ``EMAILSYNC_JWT_KEY`` /
  ``_ALGORITHM`` / ``_AUDIENCE``. The user must exist in that sub-account.
- ``Authorization: ApiKey <key>`` or ``X-Api-Key: <key>`` — a partner key, looked up
  by its SHA-256. A sub-account key acts as an admin of that sub-account; an agency
  key may only use the agency administration mutations.

Lookups that only confirm a user's credential are cached for a short time so the hot
read path does not pay one more database round trip per request. API keys are not:
a key can be revoked, and a revoked key must stop working at once in every API
process. A cached "valid" answer would outlive a revocation made in another process
(or need an invalidation message that a Redis outage could lose), while the lookup is
one indexed read by the key's hash.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from api.dependencies import ApiDependencies
from api.ws_sessions import SessionWatch
from db.repositories import tenancy
from sync_engine.services.accounts import hash_api_key
from sync_engine.settings import Settings

ROLES = ("admin", "user")
_LEEWAY_SECONDS = 30
_CACHE_TTL_SECONDS = 30.0
_CACHE_MAX_ENTRIES = 10_000


class ViewerKind(enum.Enum):
    USER = "user"
    SUB_ACCOUNT_KEY = "sub_account_key"
    AGENCY_KEY = "agency_key"


@dataclass(frozen=True, slots=True)
class Viewer:
    kind: ViewerKind
    role: str
    sub_account_id: uuid.UUID | None
    user_id: uuid.UUID | None = None
    agency_id: str | None = None
    api_key_id: uuid.UUID | None = None
    # When the credentials stop being valid (a token's ``exp``, Unix time); None for
    # API keys, which last until revoked.
    expires_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """Who acts, for idempotency keys and audit: one user, or one API key."""
        return f"user:{self.user_id}" if self.kind is ViewerKind.USER else f"api_key:{self.api_key_id}"


class AuthenticationFailed(Exception):
    """Credentials were presented and are not valid (answered 401, never with data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _TTLCache:
    """A tiny positive-result cache; cleared wholesale when full (bounded memory)."""

    def __init__(self) -> None:
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: Any, value: Any, ttl: float = _CACHE_TTL_SECONDS) -> None:
        if len(self._items) >= _CACHE_MAX_ENTRIES:
            self._items.clear()
        self._items[key] = (time.monotonic() + min(ttl, _CACHE_TTL_SECONDS), value)


class Authenticator:
    def __init__(self, rt: ApiDependencies) -> None:
        self._rt = rt
        self._users = _TTLCache()
        # WebSocket sessions of this process, closed when their credentials end.
        self.sessions = SessionWatch(rt)
        # Verified tokens (never beyond their expiry): a client sends the same one many times.
        self._tokens = _TTLCache()

    async def from_headers(self, headers: Mapping[str, str]) -> Viewer | None:
        """The viewer named by request headers; None when no credentials were sent."""
        authorization = headers.get("authorization")
        if authorization:
            return await self.from_authorization(authorization)
        api_key = headers.get("x-api-key")
        if api_key:
            return await self._from_api_key(api_key.strip())
        return None

    async def from_authorization(self, value: str) -> Viewer:
        scheme, _, credentials = value.strip().partition(" ")
        credentials = credentials.strip()
        if not credentials:
            raise AuthenticationFailed("malformed Authorization header")
        if scheme.lower() == "bearer":
            return await self._from_jwt(credentials)
        if scheme.lower() == "apikey":
            return await self._from_api_key(credentials)
        raise AuthenticationFailed("unsupported authorization scheme")

    async def _from_jwt(self, token: str) -> Viewer:
        cached = self._tokens.get(token)
        if cached is not None:
            return cached
        user_id, sub_account_id, role, expires_at = decode_user_token(self._rt.settings, token)
        key = (user_id, sub_account_id)
        if self._users.get(key) is None:
            async with self._rt.engine.connect() as conn:
                user = await tenancy.user_in_sub_account(conn, sub_account_id, user_id)
            if user is None:
                raise AuthenticationFailed("unknown user")
            self._users.put(key, True)
        viewer = Viewer(
            kind=ViewerKind.USER, role=role, sub_account_id=sub_account_id, user_id=user_id, expires_at=expires_at
        )
        self._tokens.put(token, viewer, ttl=expires_at - time.time())
        return viewer

    async def _from_api_key(self, key: str) -> Viewer:
        if not key or len(key) > 200:
            raise AuthenticationFailed("invalid API key")
        # Never cached (see the module's docstring): revocation takes effect at once.
        async with self._rt.engine.connect() as conn:
            row = await tenancy.api_key_by_hash(conn, hash_api_key(key))
        if row is None:
            raise AuthenticationFailed("invalid API key")
        if row.sub_account_id is not None:
            return Viewer(
                kind=ViewerKind.SUB_ACCOUNT_KEY, role="admin", sub_account_id=row.sub_account_id, api_key_id=row.id
            )
        return Viewer(
            kind=ViewerKind.AGENCY_KEY, role="admin", sub_account_id=None, agency_id=row.agency_id, api_key_id=row.id
        )


def decode_user_token(settings: Settings, token: str) -> tuple[uuid.UUID, uuid.UUID, str, float]:
    """(user id, sub-account id, role, expiry as a Unix time) from a verified CRM token."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_key.get_secret_value(),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            leeway=_LEEWAY_SECONDS,
            options={"require": ["exp", "sub", "sub_account_id", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationFailed("token expired") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationFailed("invalid token") from exc
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        sub_account_id = uuid.UUID(str(claims["sub_account_id"]))
    except ValueError as exc:
        raise AuthenticationFailed("invalid token claims") from exc
    role = claims["role"]
    if role not in ROLES:
        raise AuthenticationFailed("invalid token claims")
    return user_id, sub_account_id, role, float(claims["exp"])


def mint_dev_token(
    settings: Settings,
    user_id: uuid.UUID | str,
    sub_account_id: uuid.UUID | str,
    role: str = "admin",
    ttl: timedelta = timedelta(hours=12),
) -> str:
    """A token as the CRM would issue it (``emailsync token``). Needs a symmetric
    (HS*) key: with an asymmetric algorithm the service only holds the public key."""
    if not settings.jwt_algorithm.upper().startswith("HS"):
        raise ValueError("dev tokens can only be minted with an HS* JWT algorithm")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "sub_account_id": str(sub_account_id),
        "role": role,
        "iat": now,
        "exp": now + ttl,
    }
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_key.get_secret_value(), algorithm=settings.jwt_algorithm)
