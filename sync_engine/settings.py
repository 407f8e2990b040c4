"""Service settings, read from ``EMAILSYNC_*`` environment variables.

Every provider endpoint is a setting so the same code talks to Microsoft and
Google in production and to the loopback sandbox in development and tests.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Published in this repository: anyone could sign tokens with it. Fine on loopback only.
DEV_JWT_KEY = "dev-only-insecure-jwt-key-change-me-0123456789"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMAILSYNC_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./emailsync.db"
    # Absent: the embedded in-process queue and in-memory broadcast are used.
    redis_url: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"

    # CRM-issued user tokens (HS256 shared secret, or a PEM public key for RS256/ES256).
    jwt_key: SecretStr = SecretStr(DEV_JWT_KEY)
    jwt_algorithm: str = "HS256"
    jwt_audience: str | None = None
    # Fernet keys, comma separated; the first encrypts, all decrypt (rotation).
    encryption_keys: SecretStr = SecretStr("")
    # Path of a CA bundle to trust for provider endpoints (the sandbox's local CA).
    ca_bundle: str | None = None

    microsoft_authority: str = "https://login.microsoftonline.com/common"
    microsoft_client_id: str = "emailsync-dev"
    microsoft_client_secret: SecretStr = SecretStr("dev-secret")
    graph_base_url: str = "https://graph.microsoft.com/v1.0"

    google_auth_uri: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_uri: str = "https://oauth2.googleapis.com/token"
    google_revoke_uri: str = "https://oauth2.googleapis.com/revoke"
    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    gmail_base_url: str = "https://gmail.googleapis.com"
    google_client_id: str = "emailsync-dev.apps.googleusercontent.com"
    google_client_secret: SecretStr = SecretStr("dev-secret")
    gmail_pubsub_topic: str = "projects/emailsync/topics/gmail"
    # Pub/Sub push authentication: audience of the OIDC token and the pushing service account.
    gmail_push_audience: str | None = None
    gmail_push_service_account: str = "gmail-push@emailsync.iam.gserviceaccount.com"

    # Cache whole results of shared reads (threads, thread, contacts), dropped by the event bus.
    response_cache: bool = True
    # The Redis queue the API and workers share; separate deployments on one Redis use distinct names.
    queue_name: str = "emailsync:jobs"
    # The longest an idle worker goes between two polls of its queue (seconds). Every enqueue
    # of a job due now also wakes the workers over pub/sub (sync_engine/arq_queue.py), so
    # this only bounds how late a deferred job (a retry's backoff) starts, and covers a
    # wake-up lost. At a 0.01 s poll, as before the wake-ups, polling cost ~200 Redis
    # commands a second per idle worker.
    queue_poll_delay: float = Field(default=0.25, gt=0)
    graph_page_size: int = Field(default=200, ge=10, le=1000)
    # Sub-account SMTP relays: seconds per SMTP command, and how long a claimed relay
    # delivery is held before another worker may take it over (longer than a send can
    # last, or a slow send could be overlapped).
    smtp_timeout: float = Field(default=30.0, gt=0)
    relay_send_lease_seconds: float = Field(default=180.0, gt=0)
    # Lifetime (seconds) of the signed attachment download URLs the API hands out
    # (GraphQL ``Attachment.downloadUrl``): whoever holds one may fetch that file until then.
    attachment_url_ttl: int = Field(default=300, ge=1, le=86400)

    # The edge. Origins (scheme://host[:port]) of browser apps allowed to call the API
    # (CORS, the WebSocket origin check) and to be OAuth redirect targets; comma separated
    # in the environment. Empty: no browser origin but the API's own.
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Largest request body accepted on /graphql (JSON) and the webhooks, in bytes (413 past it).
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Schema introspection (__schema, __type): on for `emailsync dev`, off by default elsewhere.
    introspection: bool = False
    # The event log (README "Live events and cursors"): events older than this are purged,
    # and a subscription resuming from an older cursor is told EVENTS_MISSED.
    event_retention_hours: float = Field(default=168.0, gt=0)
    # How often an API process checks the log for events its bus did not relay (a crash
    # between a commit and its relay; an outage not yet noticed). Bounds such a delay.
    event_poll_seconds: float = Field(default=2.0, gt=0)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().rstrip("/") for item in value.split(",") if item.strip()]
        return value

    # Operations (README "Running at scale"). Log lines go to stderr, "text" for people or
    # "json" (one object a line: time, level, logger, message, request or job id) for a
    # log collector; ``serve``, ``worker`` and ``dev`` all follow these.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # One line per answered HTTP request (method, route template, status, time, request id),
    # written through the same formatter as every other line.
    access_log: bool = True
    # The worker's own Prometheus endpoint (``/metrics`` on this port); 0 = none.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Bound (seconds) on each dependency check: /readyz, /metrics' readings, start-up checks.
    check_timeout: float = Field(default=2.0, gt=0, le=60)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    # Crash recovery. How long a mailbox sync pass holds its mailbox without renewing
    # (seconds). A live pass renews every quarter of it; a worker that dies (SIGKILL, lost
    # host) frees its mailboxes this long after its last renewal, and the resume safety net
    # (every 10 s) starts another pass. Longer than a database hiccup, far shorter than
    # anyone should wait; workers' clocks must agree to well within it (NTP).
    sync_lease_seconds: float = Field(default=20.0, ge=1, le=3600)


def exposure_problems(settings: Settings) -> list[str]:
    """What makes these settings unsafe for a service reachable beyond this machine (its
    public URL is not loopback); empty when they are fine. Names settings, never values."""
    if (urlsplit(settings.public_base_url).hostname or "") in LOOPBACK_HOSTS:
        return []
    problems = []
    if settings.jwt_key.get_secret_value() == DEV_JWT_KEY:
        problems.append("EMAILSYNC_JWT_KEY is the published development key: anyone could sign user tokens")
    if not settings.encryption_keys.get_secret_value().strip():
        problems.append("EMAILSYNC_ENCRYPTION_KEYS is empty: mailbox tokens cannot be encrypted "
                        "(`emailsync genkey` prints a key)")
    return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
