"""Encryption at rest for OAuth tokens and other secrets (Fernet, rotatable keys).

The first key in ``EMAILSYNC_ENCRYPTION_KEYS`` encrypts; every listed key decrypts,
so a new key can be put in front and old rows re-encrypted at leisure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from sync_engine.domain import TokenSet


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required (EMAILSYNC_ENCRYPTION_KEYS)")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        return cls([k.strip() for k in value.split(",") if k.strip()])

    def encrypt_json(self, data: Any) -> str:
        return self._fernet.encrypt(json.dumps(data).encode()).decode()

    def decrypt_json(self, token: str) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()

    def encrypt_tokens(self, tokens: TokenSet) -> str:
        return self.encrypt_json(
            {
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
                "scope": tokens.scope,
            }
        )

    def decrypt_tokens(self, token: str) -> TokenSet:
        data = self.decrypt_json(token)
        expires = data.get("expires_at")
        return TokenSet(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            scope=data.get("scope"),
        )


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equal_hash(value: str, expected_hash: str | None) -> bool:
    return expected_hash is not None and hmac.compare_digest(sha256_hex(value), expected_hash)
