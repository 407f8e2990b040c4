"""A page write extends the sync lease from the moment of the write, never from before the
page's attachment downloads: a slow download must not let the write set the lease end
below what the heartbeat renewed it to (another pass could then take a mailbox whose
pass is alive)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import update

from db.base import utcnow
from db.engine import create_engine, create_sessionmaker
from db.models import EmailConnection
from sync_engine.domain import AttachmentData, SyncPage
from sync_engine.services.import_changes import PageImporter
from tests.integration.sync_engine.test_page_import import ANN, OWNER, PDF, _mail, _setup, _state

LEASE = timedelta(seconds=20)
# The download outlasts the time between two heartbeats in this test's scale.
DOWNLOAD_SECONDS = 1.0


async def test_a_slow_download_does_not_shorten_the_lease_the_heartbeat_renewed(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    renewed: list[datetime] = []

    class SlowClient:
        async def fetch_attachment(self, provider_message_id: str, provider_attachment_id: str) -> bytes:
            await asyncio.sleep(DOWNLOAD_SECONDS)  # the provider is slow to hand the file over
            until = utcnow() + LEASE  # meanwhile the pass's heartbeat renews the lease, as it does
            async with sessions.begin() as s:
                await s.execute(update(EmailConnection).where(EmailConnection.sync_lease_owner == "me")
                                .values(sync_lease_until=until))
            renewed.append(until)
            return PDF

    try:
        conn = await _setup(sessions)
        importer = PageImporter(sessions, utcnow, conn, SlowClient())
        attachment = AttachmentData("offer.pdf", "application/pdf", len(PDF), provider_attachment_id="att-1")
        await importer.apply(SyncPage([_mail("a", sender=ANN, to=[OWNER], attachments=[attachment])], {"inbox": "1"}),
                             "me", LEASE)
        state = await _state(sessions, conn.id)
        assert len(state["attachments"]) == 1 and state["conn"].cursor is not None
        assert renewed, "the attachment was not downloaded"
        lease_until = state["conn"].sync_lease_until
        if lease_until.tzinfo is None:  # SQLite hands back naive UTC
            lease_until = lease_until.replace(tzinfo=renewed[0].tzinfo)
        assert lease_until >= renewed[-1], (lease_until, renewed)
    finally:
        await engine.dispose()
