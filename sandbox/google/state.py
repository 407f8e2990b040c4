"""Google-only state kept beside the shared store: settings, the signing key,
watches, Pub/Sub subscriptions, quota windows and Gmail's history-id space."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.context import SandboxConfig
from sandbox.google.signing import SigningKey

if TYPE_CHECKING:
    from sandbox.context import Sandbox
    from sandbox.google.pubsub import Pusher
    from sandbox.google.quota import Quota
    from sandbox.google.watch import WatchRegistry


@dataclass
class GoogleConfig:
    """Google's runtime settings; served and patched with the others at /_sandbox/config."""

    # Gmail's per-user limit: quota units per moving window (Google: 15,000 per minute).
    gmail_quota_per_minute: int = 15_000
    gmail_quota_window_seconds: float = 60.0
    # Simulated service time of each Gmail request (benchmarks of the import path).
    gmail_latency_ms: int = 0
    # Pub/Sub push: Google configures these on the subscription, not in users.watch,
    # so they live here (or on subscriptions made with POST /_sandbox/google/pubsub/subscriptions).
    gmail_push_endpoint: str = ""
    gmail_push_audience: str = ""  # empty: the endpoint URL, which is Pub/Sub's default audience
    gmail_push_service_account: str = "gmail-push@emailsync-sandbox.iam.gserviceaccount.com"
    gmail_push_min_interval: float = 1.0  # Gmail sends at most one notification per second per user
    gmail_push_retries: int = 3  # Pub/Sub redelivers until acked; bounded here to suit tests
    # The push guide shows historyId as a JSON string in the decoded data; live pushes
    # have been seen carrying a number. Turn this on to send the number.
    gmail_push_history_id_as_number: bool = False

    # Same semantics as the core settings (coerce to the field's type; unknown keys reported).
    update = SandboxConfig.update
    to_dict = SandboxConfig.to_dict


@dataclass
class PushSubscription:
    """A Pub/Sub push subscription on a topic (what `gcloud pubsub subscriptions create
    --push-endpoint --push-auth-service-account --push-auth-token-audience` makes)."""

    name: str
    topic: str
    push_endpoint: str
    audience: str
    service_account: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic": self.topic,
            "pushEndpoint": self.push_endpoint,
            "audience": self.audience,
            "serviceAccountEmail": self.service_account,
        }


@dataclass
class GoogleState:
    config: GoogleConfig
    signing_key: SigningKey
    # keys a MAC over attachment ids (they name a MIME part of one message)
    attachment_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # per mailbox incarnation (Mailbox.user_id): where its history ids start, and
    # the lowest history id still retained (raised when cursors are expired)
    history_base: dict[str, int] = field(default_factory=dict)
    history_floor: dict[str, int] = field(default_factory=dict)
    subscriptions: dict[str, PushSubscription] = field(default_factory=dict)
    # scopes a user has granted a client, by (client id, mailbox): for include_granted_scopes
    granted_scopes: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # auth code -> (access_type=offline, prompt=consent): whether redeeming it yields a refresh token
    code_options: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    watches: WatchRegistry | None = None
    quota: Quota | None = None
    pusher: Pusher | None = None

    def reset(self) -> None:
        self.config.update(GoogleConfig().to_dict())
        self.history_base.clear()
        self.history_floor.clear()
        self.subscriptions.clear()
        self.granted_scopes.clear()
        self.code_options.clear()


def google_state(sandbox: Sandbox) -> GoogleState:
    return sandbox.extensions["google"]
