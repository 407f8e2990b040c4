"""Pub/Sub push: the published samples' data, and OIDC token verification with keys
made here (a Google-style certs endpoint served by a fake google-auth transport)."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, transport
from google.auth import jwt as google_jwt

from sync_engine.domain import PushKind
from sync_engine.providers.base import PushRejected
from sync_engine.providers.gmail.push import CachingRequest, PushVerifier, decode_data, notice_of

CERTS_URL = "https://certs.test/oauth2/v1/certs"
AUDIENCE = "https://crm.test/webhooks/gmail"
ACCOUNT = "gmail-push@emailsync.iam.gserviceaccount.com"


# ---- the published samples


def envelope(data: str) -> bytes:
    return json.dumps({"message": {"data": data, "messageId": "2070443601311540",
                                   "publishTime": "2021-02-26T19:13:55.749Z"},
                       "subscription": "projects/myproject/subscriptions/mysubscription"}).encode()


def test_push_doc_sample_data_decodes(sample_text):
    published = sample_text("gmail_pubsub_push_doc_sample.http")
    data = re.search(r'data:\s*"([^"]+)"', published).group(1)
    notice = notice_of(envelope(data))
    assert notice.kind is PushKind.CHANGED
    assert notice.address == "user@example.com"
    assert notice.history_id == "1234567890"  # what the doc's base64 really says (see SOURCES.md)


def test_push_doc_sample_as_published_is_not_json_and_is_rejected(sample_text):
    body = sample_text("gmail_pubsub_push_doc_sample.http").split("\n\n", 1)[1].encode()
    with pytest.raises(PushRejected):
        notice_of(body)


def test_decoded_data_sample_round_trips(sample):
    decoded = sample("gmail_pubsub_data_decoded_doc_sample.json")
    data = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    notice = notice_of(envelope(data))
    assert (notice.address, notice.history_id) == ("user@example.com", "9876543210")
    assert decode_data(data) == decoded


def test_minimal_pubsub_sample_is_not_a_gmail_notice(sample):
    minimal = sample("pubsub_push_minimal_sample_message.json")
    assert base64.b64decode(minimal["message"]["data"]) == b"Hello, World!"
    with pytest.raises(PushRejected):
        notice_of(json.dumps(minimal).encode())


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b"{}", b'{"message": {}}', b'{"message": {"data": 5}}',
     envelope("%%%"), envelope(base64.b64encode(b'{"historyId": "1"}').decode()),
     envelope(base64.b64encode(b'{"emailAddress": "a@b.c"}').decode()),
     envelope(base64.b64encode(b'{"emailAddress": "a@b.c", "historyId": "x1"}').decode()),
     envelope(base64.b64encode(b'"a string"').decode()), b"{" * 70000],
)
def test_malformed_bodies_are_rejected(body):
    with pytest.raises(PushRejected):
        notice_of(body)


def test_numeric_history_id_and_address_case():
    data = base64.b64encode(b'{"emailAddress": "Me@Gmail.Test", "historyId": 42}').decode()
    notice = notice_of(envelope(data))
    assert (notice.address, notice.history_id) == ("me@gmail.test", "42")


# ---- OIDC tokens


class KeyPair:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        self.signer = crypt.RSASigner.from_string(pem, key_id=kid)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=30)).sign(self.key, hashes.SHA256()))
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()

    def token(self, **overrides) -> str:
        now = int(time.time())
        claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "azp": "1234", "email": ACCOUNT,
                  "email_verified": True, "sub": "1234", "iat": now, "exp": now + 3600}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return google_jwt.encode(self.signer, claims).decode()


class FakeResponse(transport.Response):
    def __init__(self, status, data, headers=None):
        self._status, self._data, self._headers = status, data, headers or {}

    @property
    def status(self):
        return self._status

    @property
    def headers(self):
        return self._headers

    @property
    def data(self):
        return self._data


class CertsEndpoint(transport.Request):
    """Serves ``{kid: PEM}`` like www.googleapis.com/oauth2/v1/certs."""

    def __init__(self, *keys: KeyPair, cache_control="public, max-age=19800"):
        self.keys = list(keys)
        self.hits = 0
        self.cache_control = cache_control

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        assert url == CERTS_URL and method == "GET"
        self.hits += 1
        payload = {k.kid: k.cert_pem for k in self.keys}
        return FakeResponse(200, json.dumps(payload).encode(), {"Cache-Control": self.cache_control})


GOOD = KeyPair("key-1")


def verifier(endpoint, **kw):
    return PushVerifier(audience=kw.get("audience", AUDIENCE), service_account=ACCOUNT, certs_url=CERTS_URL,
                        ca_bundle=None, transport=endpoint)


def body_for(address="me@gmail.test", history_id="777"):
    data = base64.b64encode(json.dumps({"emailAddress": address, "historyId": history_id}).encode()).decode()
    return envelope(data)


async def test_a_google_signed_push_is_accepted_and_certs_are_cached():
    endpoint = CertsEndpoint(GOOD)
    push = verifier(endpoint)
    for _ in range(3):
        (notice,) = await push.parse({"authorization": f"Bearer {GOOD.token()}"}, body_for())
        assert (notice.kind, notice.address, notice.history_id) == (PushKind.CHANGED, "me@gmail.test", "777")
    assert endpoint.hits == 1


async def test_issuer_without_scheme_is_google_too():
    push = verifier(CertsEndpoint(GOOD))
    await push.parse({"Authorization": f"Bearer {GOOD.token(iss='accounts.google.com')}"}, body_for())


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://elsewhere.test/webhooks/gmail"},
        {"email": "someone-else@evil.iam.gserviceaccount.com"},
        {"email_verified": False},
        {"email_verified": None},
        {"email": None},
        {"iss": "https://evil.example.com"},
        {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600},  # expired
        {"exp": None},
    ],
)
async def test_tokens_with_wrong_claims_are_rejected(claims):
    push = verifier(CertsEndpoint(GOOD))
    with pytest.raises(PushRejected):
        await push.parse({"authorization": f"Bearer {GOOD.token(**claims)}"}, body_for())


async def test_a_token_signed_by_another_key_is_rejected():
    forger = KeyPair("key-1")  # same kid, different key
    push = verifier(CertsEndpoint(GOOD))
    with pytest.raises(PushRejected):
        await push.parse({"authorization": f"Bearer {forger.token()}"}, body_for())


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer not-a-jwt", "Bearer a.b.c"])
async def test_missing_or_garbage_authorization_is_rejected(header):
    push = verifier(CertsEndpoint(GOOD))
    headers = {} if header is None else {"authorization": header}
    with pytest.raises(PushRejected):
        await push.parse(headers, body_for())


async def test_unsigned_alg_none_token_is_rejected():
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    now = int(time.time())
    payload = base64.urlsafe_b64encode(json.dumps({"iss": "https://accounts.google.com", "aud": AUDIENCE,
                                                   "email": ACCOUNT, "email_verified": True, "iat": now,
                                                   "exp": now + 60}).encode()).rstrip(b"=").decode()
    with pytest.raises(PushRejected):
        await verifier(CertsEndpoint(GOOD)).parse({"authorization": f"Bearer {header}.{payload}."}, body_for())


async def test_a_valid_token_with_a_malformed_body_is_rejected():
    with pytest.raises(PushRejected):
        await verifier(CertsEndpoint(GOOD)).parse({"authorization": f"Bearer {GOOD.token()}"}, b"{}")


async def test_rotated_keys_are_refetched_once():
    clock = [1000.0]
    endpoint = CertsEndpoint(GOOD)
    push = verifier(endpoint)
    push.request._clock = lambda: clock[0]
    await push.parse({"authorization": f"Bearer {GOOD.token()}"}, body_for())
    rotated = KeyPair("key-2")
    endpoint.keys.append(rotated)
    clock[0] += 120  # cached certs still fresh, but they lack key-2
    await push.parse({"authorization": f"Bearer {rotated.token()}"}, body_for())
    assert endpoint.hits == 2
    # an unknown kid does not make us hammer the certs endpoint
    with pytest.raises(PushRejected):
        await push.parse({"authorization": f"Bearer {KeyPair('key-3').token()}"}, body_for())
    assert endpoint.hits == 2


def test_cache_ttl_follows_max_age_and_defaults():
    clock = [0.0]
    endpoint = CertsEndpoint(GOOD, cache_control="no-store")
    cache = CachingRequest(endpoint, CERTS_URL, clock=lambda: clock[0])
    cache(CERTS_URL)
    clock[0] = 299
    cache(CERTS_URL)
    assert endpoint.hits == 1  # default 300 s
    clock[0] = 301
    cache(CERTS_URL)
    assert endpoint.hits == 2
