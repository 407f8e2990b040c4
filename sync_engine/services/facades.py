"""The services of one process, as the API and the jobs see them.

Built once by the composition root (``emailsync.wiring``); the GraphQL context and
the job context hold this object, so a test can hand either a ``Services`` whose
members are fakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync_engine.services.accounts import AccountService
from sync_engine.services.attachments import AttachmentService
from sync_engine.services.bulk_send import BulkSendService
from sync_engine.services.connections import ConnectionService
from sync_engine.services.contacts import ContactService
from sync_engine.services.event_retention import EventRetentionService
from sync_engine.services.idempotency import IdempotencyService
from sync_engine.services.notifications import NotificationService
from sync_engine.services.outbox import OutboxService
from sync_engine.services.read_state import ReadStateService
from sync_engine.services.relay_settings import RelaySettingsService
from sync_engine.services.send import SendService
from sync_engine.services.sender import SenderService
from sync_engine.services.sync_mailbox import MailboxSyncService
from sync_engine.services.watches import WatchService


@dataclass(frozen=True)
class Services:
    accounts: AccountService
    attachments: AttachmentService
    bulk_sends: BulkSendService
    connections: ConnectionService
    contacts: ContactService
    event_log: EventRetentionService
    idempotency: IdempotencyService
    notifications: NotificationService
    outbox: OutboxService
    read_state: ReadStateService
    relays: RelaySettingsService
    sending: SendService
    senders: SenderService
    sync: MailboxSyncService
    watches: WatchService
