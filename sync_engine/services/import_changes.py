"""Apply one page of mailbox changes, with its cursor, in one transaction.

Phase 1, only for pages with attachments not yet downloaded: a dry run of phase 2's
decisions (``PagePlan`` without ``store``, in a read-only transaction that is rolled
back), which tells exactly which messages will sync and so which attachments to
download. Downloads then happen with no transaction open (no provider call ever runs
while the database write lock is held), and nothing is downloaded for mail that is not
going to sync.
Phase 2 (one transaction): read what the page needs, decide every change in page order
(dedupe, ``rules.selection``, ``rules.threading``), write the outcome, and store the
page's cursor — only if this pass still holds the mailbox's lease. If phase 2 would
sync a message whose attachment phase 1 did not download (the data changed in between,
e.g. its sender just became a contact), the transaction is rolled back, the downloads
now needed are made, and the page is decided again.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EmailConnection
from db.repositories import connections as repo
from db.repositories import tenancy
from sync_engine.domain import MailChange, SyncPage
from sync_engine.events import DomainEvent, record_events
from sync_engine.providers.base import MailboxClient
from sync_engine.services.collaborators import Clock, SessionFactory
from sync_engine.services.page_plan import CONFIDENTIAL, AttachmentNotDownloaded, Mailbox, PagePlan

__all__ = ["CONFIDENTIAL", "LeaseLost", "PageImporter"]


# Decide-and-write rounds per page when data changes under the dry run (see apply).
MAX_DECISION_ROUNDS = 3


class LeaseLost(Exception):
    """Another pass took over the mailbox (ours ran past its lease) or it was disconnected."""


class PageImporter:
    def __init__(self, sessions: SessionFactory, clock: Clock, conn: EmailConnection, client: MailboxClient) -> None:
        self._sessions = sessions
        self._clock = clock
        self._conn = conn
        self._client = client
        self._box: Mailbox | None = None

    async def _mailbox(self, session: AsyncSession) -> Mailbox:
        if self._box is None:
            account = await tenancy.sub_account_model(session, self._conn.sub_account_id)
            assert account is not None
            self._box = Mailbox(
                connection_id=self._conn.id,
                sub_account_id=self._conn.sub_account_id,
                user_id=self._conn.user_id,
                owner=self._conn.address.lower(),
                user_addresses=frozenset(await tenancy.user_addresses(session, self._conn.sub_account_id)),
                bcc_address=account.bcc_sync_address.lower(),
                labs=account.labs_two_way_sync,
            )
        return self._box

    async def apply(self, page: SyncPage, lease_owner: str, lease_length: timedelta) -> list[DomainEvent]:
        """Write the page if ``lease_owner`` still holds the mailbox, and extend its lease by
        ``lease_length`` from the moment of the write (downloads before it may take long)."""
        contents = await self._download_needed_attachments(page.changes)
        for _ in range(MAX_DECISION_ROUNDS - 1):
            try:
                return await self._write(page, contents, lease_owner, lease_length)
            except AttachmentNotDownloaded:
                # Rolled back; decide afresh which downloads the page needs now.
                contents.update(await self._download_needed_attachments(page.changes, have=contents))
        return await self._write(page, contents, lease_owner, lease_length)  # still racing: fail, the pass retries

    async def _write(
        self, page: SyncPage, contents: dict[tuple[str, str], bytes], lease_owner: str, lease_length: timedelta
    ) -> list[DomainEvent]:
        async with self._sessions.begin() as session:
            plan = PagePlan(await self._mailbox(session), contents, needed=None)
            db = await session.connection()
            await plan.load(db, page.changes)
            for change in page.changes:
                plan.apply(change)
            await plan.store(db)
            # The lease end from now, not from before the downloads: never shorter than the heartbeat's.
            stored = await repo.store_page_cursor(session, self._conn.id, lease_owner, cursor=page.cursor,
                                                  imported=plan.imported, confidential=plan.confidential,
                                                  lease_until=self._clock() + lease_length)
            if not stored:
                raise LeaseLost(self._conn.id)  # rolls the whole page back
            await record_events(db, plan.events)  # last: it holds the sub-account's event counter
        return plan.events

    # ---- phase 1

    async def _download_needed_attachments(
        self, changes: list[MailChange], have: dict[tuple[str, str], bytes] | None = None
    ) -> dict[tuple[str, str], bytes]:
        if not any(c.message is not None and any(a.content is None for a in c.message.attachments) for c in changes):
            return {}
        needed: list[tuple[str, str]] = []
        async with self._sessions() as session:
            transaction = await session.begin()
            try:
                # The same decisions as phase 2, written nowhere: only ``needed`` is kept.
                plan = PagePlan(await self._mailbox(session), {}, needed=needed)
                await plan.load(await session.connection(), changes)
                for change in changes:
                    plan.apply(change)
            finally:
                await transaction.rollback()
        return {key: await self._client.fetch_attachment(*key) for key in dict.fromkeys(needed) if key not in (have or {})}
