"""All models, imported here so ``Base.metadata`` knows every table."""

from db.models.connections import ConnectionStatus, EmailConnection, OAuthFlow
from db.models.events import EventCounter, EventRecord
from db.models.mail import Attachment, Message, Thread
from db.models.sending import BulkSend, BulkSendStatus, IdempotencyKey, SubAccountEmailProvider
from db.models.sync_state import OutboxItem, OutboxStatus, SyncSkip
from db.models.tenancy import ApiKey, Contact, SubAccount, User

__all__ = [
    "ApiKey",
    "Attachment",
    "BulkSend",
    "BulkSendStatus",
    "ConnectionStatus",
    "Contact",
    "EmailConnection",
    "EventCounter",
    "EventRecord",
    "IdempotencyKey",
    "Message",
    "OAuthFlow",
    "OutboxItem",
    "OutboxStatus",
    "SubAccount",
    "SubAccountEmailProvider",
    "SyncSkip",
    "Thread",
    "User",
]
