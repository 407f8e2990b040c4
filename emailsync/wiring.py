"""Wire the services from the process's collaborators (the composition root's one place
where every service's constructor is called)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from sync_engine.crypto import SecretBox
from sync_engine.job_queue import Jobs
from sync_engine.services.accounts import AccountService
from sync_engine.services.attachments import AttachmentService
from sync_engine.services.bulk_send import BulkSendService
from sync_engine.services.collaborators import Clock, EventPublisher, ProviderRegistry, SessionFactory
from sync_engine.services.connection_status import ConnectionStatuses
from sync_engine.services.connections import ConnectionService
from sync_engine.services.contacts import ContactService
from sync_engine.services.event_retention import EventRetentionService
from sync_engine.services.facades import Services
from sync_engine.services.idempotency import IdempotencyService
from sync_engine.services.mailboxes import Mailboxes
from sync_engine.services.notifications import NotificationService
from sync_engine.services.outbox import OutboxService
from sync_engine.services.read_state import ReadStateService
from sync_engine.services.relay_settings import RelaySettingsService
from sync_engine.services.send import SendService
from sync_engine.services.sender import SenderService
from sync_engine.services.sync_mailbox import MailboxSyncService
from sync_engine.services.watches import WatchService
from sync_engine.settings import Settings


@dataclass(frozen=True)
class Collaborators:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    secrets: SecretBox
    providers: ProviderRegistry
    events: EventPublisher
    jobs: Jobs
    clock: Clock
    instance: str


def build_services(c: Collaborators) -> Services:
    settings = c.settings
    mailboxes = Mailboxes(c.sessions, c.secrets, c.providers)
    statuses = ConnectionStatuses(c.sessions, c.events)
    idempotency = IdempotencyService(sessions=c.sessions, clock=c.clock)
    relays = RelaySettingsService(sessions=c.sessions, secrets=c.secrets, clock=c.clock,
                                  ca_bundle=settings.ca_bundle, smtp_timeout=settings.smtp_timeout)
    senders = SenderService(sessions=c.sessions)
    outbox = OutboxService(sessions=c.sessions, mailboxes=mailboxes, statuses=statuses, events=c.events,
                           clock=c.clock, relays=relays,
                           relay_send_lease=timedelta(seconds=settings.relay_send_lease_seconds))
    return Services(
        accounts=AccountService(sessions=c.sessions, public_base_url=settings.public_base_url),
        attachments=AttachmentService(sessions=c.sessions),
        bulk_sends=BulkSendService(sessions=c.sessions, events=c.events, jobs=c.jobs, clock=c.clock,
                                   senders=senders, idempotency=idempotency, outbox=outbox),
        connections=ConnectionService(sessions=c.sessions, secrets=c.secrets, mailboxes=mailboxes, events=c.events,
                                      jobs=c.jobs, clock=c.clock, public_base_url=settings.public_base_url),
        contacts=ContactService(sessions=c.sessions),
        event_log=EventRetentionService(engine=c.engine, clock=c.clock,
                                        retention=timedelta(hours=settings.event_retention_hours)),
        idempotency=idempotency,
        notifications=NotificationService(sessions=c.sessions, mailboxes=mailboxes, jobs=c.jobs),
        outbox=outbox,
        read_state=ReadStateService(sessions=c.sessions, mailboxes=mailboxes, events=c.events, jobs=c.jobs),
        relays=relays,
        sending=SendService(sessions=c.sessions, events=c.events, jobs=c.jobs, clock=c.clock, senders=senders,
                            idempotency=idempotency),
        senders=senders,
        sync=MailboxSyncService(sessions=c.sessions, mailboxes=mailboxes, statuses=statuses, events=c.events,
                                clock=c.clock, lease_length=timedelta(seconds=settings.sync_lease_seconds),
                                instance=c.instance),
        watches=WatchService(sessions=c.sessions, mailboxes=mailboxes, statuses=statuses, jobs=c.jobs,
                             clock=c.clock, public_base_url=settings.public_base_url),
    )
