"""The product's shared words: every status, kind, route and reason that is stored in the
database or passed between layers, as ``enum.StrEnum``.

One definition per word, below ``db`` and ``sync_engine`` (this package imports nothing of
ours): the models type their columns with these enums, the rules and services decide with
them, and the GraphQL schema exposes the same classes (``api.types.enums``). A member *is*
its value: it equals the stored string, and ``str()``, f-strings and JSON give that value.
Enums private to one module stay in that module.
"""

from vocabulary.accounts import ContactSource, Role
from vocabulary.events import EventType
from vocabulary.mail import MessageDirection, MessageOrigin, MessageStatus
from vocabulary.mailboxes import ConnectionStatus, Provider
from vocabulary.sending import BulkSendStatus, EmailKind, OutboxStatus, RouteReason, SenderRoute, SmtpTlsMode
from vocabulary.sync import AttachmentProblem, ChangeKind, Folder, PushKind, SkipReason

__all__ = [
    "AttachmentProblem",
    "BulkSendStatus",
    "ChangeKind",
    "ConnectionStatus",
    "ContactSource",
    "EmailKind",
    "EventType",
    "Folder",
    "MessageDirection",
    "MessageOrigin",
    "MessageStatus",
    "OutboxStatus",
    "Provider",
    "PushKind",
    "Role",
    "RouteReason",
    "SenderRoute",
    "SkipReason",
    "SmtpTlsMode",
]
