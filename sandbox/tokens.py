"""OAuth grants shared by the simulated identity providers.

Authorization codes, access tokens and refresh tokens are opaque random strings
bound to one mailbox and one client. Both Microsoft and Google issue opaque
bearer tokens from the client's point of view, so one registry serves both; the
prefix tells them apart in logs. Mailbox-level operations (revoke, expire now)
are what the control API drives.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import unquote_plus

from sandbox import ids


def client_credentials(form: dict[str, str], authorization: str) -> tuple[str, str | None]:
    """(client_id, secret) of a token request: HTTP Basic when present (RFC 6749 2.3.1,
    form-encoded parts), else the ``client_id``/``client_secret`` form fields."""
    client_id, secret = form.get("client_id", ""), form.get("client_secret")
    if authorization.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            client_id, secret = unquote_plus(user), unquote_plus(password)
        except (ValueError, UnicodeDecodeError):
            pass
    return client_id, secret


@dataclass
class AuthCode:
    value: str
    mailbox: str  # lower-cased address
    client_id: str
    redirect_uri: str
    scopes: list[str]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: datetime
    used: bool = False


@dataclass
class AccessToken:
    value: str
    mailbox: str
    client_id: str
    scopes: list[str]
    expires_at: datetime
    revoked: bool = False

    def expired(self) -> bool:
        return self.revoked or ids.utcnow() >= self.expires_at


@dataclass
class RefreshToken:
    value: str
    mailbox: str
    client_id: str
    scopes: list[str]
    revoked: bool = False
    rotated: bool = False  # replaced by a newer token and no longer usable
    issued_at: datetime = field(default_factory=ids.utcnow)


def pkce_matches(verifier: str, challenge: str, method: str | None) -> bool:
    if (method or "plain").upper() == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") == challenge
    return verifier == challenge


class TokenRegistry:
    CODE_LIFETIME = timedelta(minutes=10)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.codes: dict[str, AuthCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        # client id -> secret. Clients register explicitly or on first use
        # (trust on first use), after which a different secret is rejected.
        self.client_secrets: dict[str, str] = {}
        self.permanent_clients: dict[str, str] = {}  # from the command line: survive resets

    def register_client(self, client_id: str, secret: str, *, permanent: bool = False) -> None:
        with self._lock:
            self.client_secrets[client_id] = secret
            if permanent:
                self.permanent_clients[client_id] = secret

    def reset(self) -> None:
        with self._lock:
            self.codes.clear()
            self.access.clear()
            self.refresh.clear()
            self.client_secrets = dict(self.permanent_clients)

    def check_client(self, client_id: str, secret: str | None) -> bool:
        if not client_id or not secret:
            return False
        with self._lock:
            known = self.client_secrets.setdefault(client_id, secret)
        return known == secret

    def issue_code(self, prefix: str, **fields: object) -> AuthCode:
        code = AuthCode(value=ids.opaque_token(prefix, 48), expires_at=ids.utcnow() + self.CODE_LIFETIME, **fields)  # type: ignore[arg-type]
        with self._lock:
            self.codes[code.value] = code
        return code

    def issue_access(self, prefix: str, mailbox: str, client_id: str, scopes: list[str], ttl: int) -> AccessToken:
        token = AccessToken(
            value=ids.opaque_token(prefix, 96),
            mailbox=mailbox.lower(),
            client_id=client_id,
            scopes=scopes,
            expires_at=ids.utcnow() + timedelta(seconds=ttl),
        )
        with self._lock:
            self.access[token.value] = token
        return token

    def issue_refresh(self, prefix: str, mailbox: str, client_id: str, scopes: list[str]) -> RefreshToken:
        token = RefreshToken(value=ids.opaque_token(prefix, 96), mailbox=mailbox.lower(), client_id=client_id, scopes=scopes)
        with self._lock:
            self.refresh[token.value] = token
        return token

    def revoke_mailbox(self, mailbox: str) -> None:
        key = mailbox.lower()
        with self._lock:
            for token in [*self.access.values(), *self.refresh.values()]:
                if token.mailbox == key:
                    token.revoked = True

    def expire_access(self, mailbox: str) -> int:
        key = mailbox.lower()
        now = ids.utcnow()
        count = 0
        with self._lock:
            for token in self.access.values():
                if token.mailbox == key and token.expires_at > now:
                    token.expires_at = now
                    count += 1
        return count

    def count_for(self, mailbox: str) -> dict[str, int]:
        key = mailbox.lower()
        live_access = sum(1 for t in self.access.values() if t.mailbox == key and not t.expired())
        live_refresh = sum(1 for t in self.refresh.values() if t.mailbox == key and not t.revoked and not t.rotated)
        return {"accessTokens": live_access, "refreshTokens": live_refresh}
