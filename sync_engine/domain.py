"""Provider-neutral types shared by rules, services and adapters.

Adapters translate Microsoft Graph / Gmail payloads into these types and back;
nothing above the adapters ever sees a provider's wire format. The words they use
(providers, folders, change and push kinds, TLS modes) are the ``vocabulary``'s,
re-exported here for the adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vocabulary import ChangeKind as ChangeKind
from vocabulary import Folder as Folder
from vocabulary import Provider as Provider
from vocabulary import PushKind as PushKind
from vocabulary import SmtpTlsMode as SmtpTlsMode


@dataclass(frozen=True, slots=True)
class Address:
    email: str
    name: str | None = None

    @property
    def normalized(self) -> str:
        return self.email.strip().lower()


@dataclass(slots=True)
class AttachmentData:
    """An attachment as the provider describes it; ``content`` may be fetched lazily."""

    filename: str
    content_type: str
    size: int
    provider_attachment_id: str | None = None
    content: bytes | None = None
    is_inline: bool = False
    content_id: str | None = None


@dataclass(slots=True)
class MailMessage:
    """One message read from a mailbox, in provider-neutral form."""

    provider_id: str
    # Provider's own thread grouping: Graph conversationId, Gmail threadId.
    thread_key: str | None
    folder: Folder
    message_id: str | None  # RFC 5322 Message-ID, with angle brackets
    in_reply_to: str | None
    references: list[str]
    subject: str
    sender: Address | None
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    sent_at: datetime | None
    is_read: bool
    is_draft: bool = False
    html: str | None = None  # raw (unsanitized) HTML body, if any
    text: str | None = None
    attachments: list[AttachmentData] = field(default_factory=list)


@dataclass(slots=True)
class MailChange:
    kind: ChangeKind
    provider_id: str
    message: MailMessage | None = None  # set for UPSERT
    is_read: bool | None = None  # set for READ_STATE


@dataclass(slots=True)
class SyncPage:
    """A batch of changes plus the cursor to store *with* them, in one transaction.

    Replaying a page (after a crash before commit) must be harmless: the engine
    dedupes by provider id (only the Sent copy of a CRM send is matched by its Message-ID).
    """

    changes: list[MailChange]
    cursor: dict[str, Any]
    # True on the page that ends a full pass (cursor now points at "now").
    complete: bool = False


@dataclass(slots=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scope: str | None = None


@dataclass(slots=True)
class AuthorizationRequest:
    """What the user's browser is sent to, and what must be kept until the callback."""

    url: str
    state: str
    # Opaque, secret flow data (PKCE verifier, nonce...) stored encrypted until the callback.
    flow: dict[str, Any]


@dataclass(slots=True)
class ConnectedAccount:
    tokens: TokenSet
    address: str
    display_name: str | None


@dataclass(slots=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(slots=True)
class OutgoingMessage:
    """A CRM message to send through a mailbox. ``message_id`` is ours, set before sending,
    so the copy that comes back from the Sent folder is recognised."""

    message_id: str
    sender: Address
    to: Sequence[Address]
    subject: str
    html: str | None
    text: str | None
    cc: Sequence[Address] = ()
    bcc: Sequence[Address] = ()
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    # Reply context in the provider's terms (provider id of the message replied to, thread key).
    reply_to_provider_id: str | None = None
    thread_key: str | None = None
    attachments: Sequence[OutgoingAttachment] = ()


@dataclass(slots=True)
class SentMessage:
    provider_id: str | None
    thread_key: str | None
    message_id: str
    # Recipients the provider refused for good while it took the message for the others.
    refused_recipients: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class SmtpRelayConfig:
    """The sub-account-level provider (DESIGN.md rule 10): an SMTP relay. ``password`` is
    the decrypted secret; never log this object."""

    host: str
    port: int
    tls_mode: SmtpTlsMode
    username: str | None
    password: str | None
    from_email: str
    from_name: str | None = None

    def __repr__(self) -> str:  # keep the password out of tracebacks and logs
        return f"SmtpRelayConfig(host={self.host!r}, port={self.port}, tls_mode={self.tls_mode.value})"


@dataclass(slots=True)
class WatchState:
    """A provider push registration (Graph subscription, Gmail watch)."""

    subscription_id: str | None
    expires_at: datetime


@dataclass(slots=True)
class PushNotice:
    """A parsed change notification, reduced to what the engine needs.

    Graph: ``subscription_id`` + ``client_state`` (checked by the service against the
    stored secret). Gmail: ``address`` + ``history_id`` (the OIDC JWT was verified by the
    adapter before this was built)."""

    kind: PushKind = PushKind.CHANGED
    subscription_id: str | None = None
    client_state: str | None = None
    address: str | None = None
    history_id: str | None = None


# ---- errors an adapter raises; the services map them to connection states and retries


class ProviderError(Exception):
    """Base class of provider failures."""


class ThrottledError(ProviderError):
    def __init__(self, retry_after: float, message: str = "throttled") -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CursorExpiredError(ProviderError):
    """The delta/history cursor is no longer valid: a full resync is needed."""


class AuthRevokedError(ProviderError):
    """The grant was revoked or the refresh token is invalid: the user must reconnect."""


class NotFoundError(ProviderError):
    """The addressed provider object does not exist (any more)."""


class PermanentSendError(ProviderError):
    """The provider refused the message for good (bad recipient, too large...)."""


class RelayCheckFailed(ProviderError):
    """A test connection to an SMTP relay failed. ``code`` says where:
    ``UNREACHABLE`` (DNS, refused, timeout), ``TLS_FAILED`` (handshake, certificate,
    STARTTLS not offered), ``AUTH_FAILED`` (credentials refused, or AUTH not offered
    when credentials are set), ``REFUSED`` (the server answered an error otherwise)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DeliveryUncertain(ProviderError):
    """An earlier attempt handed the message over (SMTP DATA was sent) and its outcome is
    unknown. Sending again could deliver twice, so the send is not retried."""


def utc_now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
