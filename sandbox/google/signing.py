"""The key Google signs its JWTs with: id_tokens from the token endpoint and the
OIDC tokens Pub/Sub attaches to push requests.

Google publishes the public half twice: as PEM X.509 certificates keyed by
``kid`` (``/oauth2/v1/certs``, what ``google.oauth2.id_token.verify_token``
reads) and as a JWKS (``/oauth2/v3/certs``). Both are served from this key.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

from sandbox import ids


class SigningKey:
    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # Google's kids are 40 hex digits (a SHA-1 of the key).
        self.kid = hashlib.sha1(public_der).hexdigest()
        self.certificate_pem = self._self_signed_certificate()

    def _self_signed_certificate(self) -> str:
        now = ids.utcnow()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox.accounts.google.test")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .sign(self.private_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def pem_certs(self) -> dict[str, str]:
        return {self.kid: self.certificate_pem}

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": jwk["n"], "e": jwk["e"]}]}


def subject_id(seed: str) -> str:
    """A stable 21-digit numeric id, the shape of Google account and service-account ids."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "1" + str(int.from_bytes(digest[:10], "big")).rjust(20, "0")[:20]
