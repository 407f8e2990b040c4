"""Microsoft-only state kept beside the shared store."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:
    from sandbox.context import Sandbox
    from sandbox.microsoft.delta import DeltaRegistry
    from sandbox.microsoft.subscriptions import SubscriptionRegistry
    from sandbox.microsoft.throttling import Throttle


@dataclass
class SigningKey:
    """The RSA key that signs id_tokens; its public half is served as a JWKS."""

    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    @property
    def kid(self) -> str:
        numbers = self.private_key.public_key().public_numbers()
        digest = hashlib.sha1(numbers.n.to_bytes(256, "big")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class MicrosoftState:
    signing_key: SigningKey
    delta: DeltaRegistry
    subscriptions: SubscriptionRegistry
    throttle: Throttle
    application_id: str
    extra: dict[str, Any] = field(default_factory=dict)


def ms_state(sandbox: Sandbox) -> MicrosoftState:
    return sandbox.extensions["microsoft"]
