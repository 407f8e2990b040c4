"""The services driven directly, as the jobs and resolvers call them: SQLite, the in-process
sandbox over HTTPS, and a recording job backend in place of the queue (handed in through
the composition root's own constructor). Each job the services ask for is run by the test,
so every step is observable: no API server, no worker, no waiting."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.models import Contact, EmailConnection, Message, SubAccount, User
from db.repositories.threads import list_threads
from emailsync.runtime import Runtime, open_runtime
from sandbox.server import SandboxServer
from sync_engine.domain import Provider
from sync_engine.job_queue import JobName
from sync_engine.services.send import SendRequest
from sync_engine.services.watches import WatchFailed
from tests.support.browser import provider_answer
from tests.support.databases import SQLITE, fresh_database
from tests.support.stack import free_port, stack_settings, trust


class RecordingBackend:
    def __init__(self) -> None:
        self.jobs: list[tuple[str, tuple[Any, ...]]] = []

    async def enqueue(self, job: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None) -> None:
        self.jobs.append((job, args))

    async def close(self) -> None:
        return None

    def take(self, name: JobName) -> list[tuple[Any, ...]]:
        taken = [args for job, args in self.jobs if job == name.value]
        self.jobs = [(job, args) for job, args in self.jobs if job != name.value]
        return taken


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
async def rt(sandbox_server: SandboxServer, tmp_path: Path, encryption_key: str) -> AsyncIterator[Runtime]:
    async with fresh_database(SQLITE, tmp_path) as url:
        settings = stack_settings(database_url=url, redis_url=None, sandbox_url=sandbox_server.base_url,
                                  ca_file=sandbox_server.ca_file, port=free_port(), encryption_key=encryption_key)
        async with open_runtime(settings, backend=RecordingBackend()) as runtime:
            yield runtime


def recorded(rt: Runtime) -> RecordingBackend:
    backend = rt.jobs.backend
    assert isinstance(backend, RecordingBackend)
    return backend


async def _tenant(rt: Runtime, mailbox: str) -> tuple[uuid.UUID, uuid.UUID]:
    async with rt.sessions.begin() as session:
        account = SubAccount(agency_id="agency-direct", name="Direct", labs_two_way_sync=True,
                             bcc_sync_address=f"sync-{uuid.uuid4().hex[:8]}@bcc.emailsync.test")
        session.add(account)
        await session.flush()
        user = User(sub_account_id=account.id, email="owner@biz.example", email_normalized="owner@biz.example",
                    name="Owner", role="admin")
        session.add_all([user, Contact(sub_account_id=account.id, email="ann@client.example",
                                       email_normalized="ann@client.example", name="Ann")])
        await session.flush()
        return account.id, user.id


async def _connect(rt: Runtime, sandbox: httpx.AsyncClient, provider: Provider, mailbox: str
                   ) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    (await sandbox.post("/_sandbox/mailboxes", json={"provider": provider.value, "address": mailbox,
                                                     "name": "Owner"})).raise_for_status()
    sub_account_id, user_id = await _tenant(rt, mailbox)
    connections = rt.services.connections
    url = await connections.start_connection(sub_account_id=sub_account_id, user_id=user_id, provider=provider,
                                             return_to=None, login_hint=mailbox)
    callback = f"{rt.settings.public_base_url}/oauth/{provider.value}/callback"
    async with httpx.AsyncClient(verify=trust(rt.settings.ca_bundle or ""), timeout=30) as browser:
        params = await provider_answer(browser, url, callback)
    answer = await connections.accept_provider_answer(provider=provider, params=params)
    assert answer.error is None and answer.flow_token is not None
    connection_id = await connections.complete_connection(sub_account_id=sub_account_id, user_id=user_id,
                                                          flow_token=answer.flow_token)
    return sub_account_id, user_id, connection_id


@pytest.mark.parametrize("provider", [Provider.OUTLOOK, Provider.GMAIL])
async def test_connect_watch_sync_and_read_state_through_the_services(
        rt: Runtime, sandbox_server: SandboxServer, provider: Provider) -> None:
    mailbox = f"owner-{uuid.uuid4().hex[:6]}@{'contoso.test' if provider is Provider.OUTLOOK else 'gmail.test'}"
    async with httpx.AsyncClient(base_url=sandbox_server.base_url, verify=trust(sandbox_server.ca_file)) as sandbox:
        sub_account_id, user_id, connection_id = await _connect(rt, sandbox, provider, mailbox)
        backend = recorded(rt)
        # Completing the sign-in asks for the watch; setting it up asks for the first sync.
        assert backend.take(JobName.SETUP_CONNECTION) == [(str(connection_id),)]
        if provider is Provider.OUTLOOK:
            # No API serves the webhook here, so Graph's validation handshake fails: the watch
            # is retried by its job, and the first import is requested all the same.
            with pytest.raises(WatchFailed):
                await rt.services.watches.setup_connection(connection_id)
        else:
            await rt.services.watches.setup_connection(connection_id)
        assert backend.take(JobName.SYNC_MAILBOX) == [(str(connection_id),)]

        arrived = (await sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
            "from": "ann@client.example", "subject": "Viewing on Friday", "text": "See you then"})).json()
        assert await rt.services.sync.sync_connection(connection_id) is True
        assert await rt.services.sync.pending_syncs() == []  # the pass served the request it found

        async with rt.sessions() as session:
            conn = await session.get(EmailConnection, connection_id)
            # A pass that imported turns a failed watch's ERROR back to ACTIVE.
            assert conn is not None and conn.status == "active" and conn.messages_synced == 1
        thread_id = await _only_thread(rt, sub_account_id)

        thread = await rt.services.read_state.mark_thread_read(sub_account_id=sub_account_id, thread_id=thread_id,
                                                              is_read=True)
        assert thread.unread_count == 0
        (write_back,) = backend.take(JobName.WRITE_BACK_READ_STATE)
        assert write_back[0] == str(connection_id) and write_back[2] is True
        await rt.services.read_state.write_back(connection_id, write_back[1], True)
        assert await rt.services.read_state.pending_write_backs() == {}
        listed = (await sandbox.get(f"/_sandbox/mailboxes/{mailbox}/messages", params={"folder": "inbox"})).json()
        messages = listed["messages"] if isinstance(listed, dict) else listed
        assert [m.get("isRead") for m in messages if m["id"] == arrived["id"]] == [True]

        # Disconnecting retires the connection at once: tokens gone, nothing left to retire.
        await rt.services.connections.disconnect_connection(sub_account_id=sub_account_id, user_id=user_id)
        assert await rt.services.connections.unretired_connections() == []


async def _only_thread(rt: Runtime, sub_account_id: uuid.UUID) -> uuid.UUID:
    async with rt.engine.connect() as conn:
        page = await list_threads(conn, sub_account_id, limit=10)
    (row,) = page.rows
    return row.t_id


@pytest.mark.parametrize("provider", [Provider.OUTLOOK, Provider.GMAIL])
async def test_a_crm_send_is_queued_then_delivered_once_through_the_mailbox(
        rt: Runtime, sandbox_server: SandboxServer, provider: Provider) -> None:
    mailbox = f"sender-{uuid.uuid4().hex[:6]}@{'contoso.test' if provider is Provider.OUTLOOK else 'gmail.test'}"
    async with httpx.AsyncClient(base_url=sandbox_server.base_url, verify=trust(sandbox_server.ca_file)) as sandbox:
        sub_account_id, user_id, connection_id = await _connect(rt, sandbox, provider, mailbox)
        backend = recorded(rt)
        backend.jobs.clear()
        request = SendRequest(subject="Your quote", html="<p>Attached.</p>", text=None, to=["ann@client.example"],
                              idempotency_key=f"quote-{uuid.uuid4().hex[:6]}")
        message = await rt.services.sending.send_email(sub_account_id=sub_account_id, user_id=user_id,
                                                       request=request)
        again = await rt.services.sending.send_email(sub_account_id=sub_account_id, user_id=user_id,
                                                     request=request)
        assert again.id == message.id and message.status == "queued"  # the key answers the first send
        (delivery,) = backend.take(JobName.DELIVER_OUTBOX)  # one job: the replay queued nothing
        assert message.connection_id == connection_id

        outbox_id = uuid.UUID(delivery[0])
        await rt.services.outbox.deliver(outbox_id)
        await rt.services.outbox.deliver(outbox_id)  # a duplicate job finds the item done
        listed = (await sandbox.get(f"/_sandbox/mailboxes/{mailbox}/messages",
                                    params={"folder": "sentitems" if provider is Provider.OUTLOOK else "sent"})).json()
        sent = [m for m in (listed["messages"] if isinstance(listed, dict) else listed)
                if m.get("subject") == "Your quote"]
        assert len(sent) == 1
        async with rt.sessions() as session:
            stored = await session.get(Message, message.id)
            assert stored is not None and stored.status == "sent" and stored.provider_message_id is not None
        assert await rt.services.outbox.due_items() == []
