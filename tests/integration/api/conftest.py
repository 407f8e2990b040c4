"""Fixtures for driving the API as a client does: a real uvicorn server on a loopback
port, over a freshly migrated database (a SQLite file, and a throwaway PostgreSQL
database), seeded through the db models.

The server, the runtime and the seed live for the whole session per backend; tests
that write use rows of their own so they do not depend on each other's order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from broadcaster import Broadcast
from cryptography.fernet import Fernet
from pydantic import SecretStr

from api.auth import mint_dev_token
from db.engine import create_engine, create_sessionmaker
from db.models import Attachment, Contact, EmailConnection, Message, SubAccount, SyncSkip, Thread, User
from emailsync.asgi import create_app
from emailsync.runtime import Runtime
from sync_engine.crypto import SecretBox, sha256_hex
from sync_engine.domain import TokenSet
from sync_engine.events import BroadcastEventBus, DomainEvent, record_events
from sync_engine.job_queue import Jobs
from sync_engine.settings import Settings
from tests.support.databases import BACKENDS, fresh_database

# The plaintext secrets planted in the seeded connection: no response may ever contain them.
PLANTED_ACCESS_TOKEN = "planted-access-token-" + "x" * 12
PLANTED_REFRESH_TOKEN = "planted-refresh-token-" + "y" * 12
PLANTED_CLIENT_STATE = "planted-client-state"


class RecordingQueue:
    """Stands in for the job queue: the API's own code enqueues nothing in these tests."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, tuple[Any, ...]]] = []

    async def enqueue(self, job: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None) -> None:
        self.jobs.append((job, args))

    async def close(self) -> None:
        return None


@dataclass
class Seed:
    sub_a: uuid.UUID
    sub_b: uuid.UUID
    admin_a: uuid.UUID
    user_a: uuid.UUID
    user_a2: uuid.UUID
    user_b: uuid.UUID
    contacts_a: list[uuid.UUID]
    contact_b: uuid.UUID
    threads_a: list[uuid.UUID]  # most recent first
    thread_b: uuid.UUID
    message_b: uuid.UUID
    thread_with_attachment: uuid.UUID
    connection_a: uuid.UUID
    connection_a2: uuid.UUID
    connection_b: uuid.UUID
    token_ciphertext: str
    skip_a: uuid.UUID
    skip_a2: uuid.UUID
    agency_key: str = ""
    other_agency_key: str = ""
    sub_a_key: str = ""
    tokens: dict[str, str] = field(default_factory=dict)


@dataclass
class Api:
    """A client of the running server."""

    base_url: str
    rt: Runtime
    settings: Settings
    seed: Seed
    http: httpx.AsyncClient
    backend: str

    def token(self, who: str) -> str:
        return self.seed.tokens[who]

    async def emit(self, event: DomainEvent) -> DomainEvent:
        """What a service does with an event: log it in a transaction, then relay it."""
        logged = dataclasses.replace(event, seq=None)
        async with self.rt.sessions.begin() as session:
            await record_events(session, [logged])
        await self.rt.events.publish(logged)
        return logged

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        auth: str | None = None,
        headers: dict[str, str] | None = None,
        accept: str | None = "application/json",
    ) -> httpx.Response:
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = auth
        if accept is not None:
            sent["Accept"] = accept
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.http.post("/graphql", json=body, headers=sent)

    async def gql(self, query: str, variables: dict[str, Any] | None = None, *, as_: str = "user_a") -> dict[str, Any]:
        """Run as a seeded caller (a user name, or 'agency_key' / 'sub_a_key'); returns the JSON body."""
        response = await self.post(query, variables, auth=self.auth_header(as_))
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None, *, as_: str = "user_a") -> dict[str, Any]:
        body = await self.gql(query, variables, as_=as_)
        assert "errors" not in body, body
        return body["data"]

    def auth_header(self, who: str) -> str:
        if who.endswith("_key"):
            return f"ApiKey {getattr(self.seed, who)}"
        return f"Bearer {self.token(who)}"


def fernet_key() -> str:
    return Fernet.generate_key().decode()


def make_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=None,
        encryption_keys=SecretStr(fernet_key()),
        jwt_key=SecretStr("test-jwt-key-" + secrets.token_hex(16)),
        public_base_url="https://emailsync.example.com",
    )


async def build_runtime(settings: Settings) -> Runtime:
    # Built by hand rather than with open_runtime(): the API needs no provider adapter
    # or job runner, and these tests must not depend on them (jobs are only recorded).
    engine = create_engine(settings.database_url)
    broadcast = Broadcast("memory://")
    await broadcast.connect()
    rt = Runtime(
        settings=settings,
        engine=engine,
        sessions=create_sessionmaker(engine),
        secrets=SecretBox.from_setting(settings.encryption_keys.get_secret_value()),
        providers={},
        events=BroadcastEventBus(broadcast),
        jobs=Jobs(RecordingQueue()),
        broadcast=broadcast,
    )
    return rt


async def close_runtime(rt: Runtime) -> None:
    await rt.feeds.close()
    await rt.jobs.close()
    if rt.broadcast is not None:
        await rt.broadcast.disconnect()
    await rt.engine.dispose()


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def seed_database(rt: Runtime) -> Seed:
    async with rt.sessions() as s:
        sub_a = SubAccount(agency_id="agency-1", name="Acme Plumbing", bcc_sync_address=f"sync-a-{uuid.uuid4().hex[:8]}@bcc.test")
        sub_b = SubAccount(agency_id="agency-2", name="Other Co", bcc_sync_address=f"sync-b-{uuid.uuid4().hex[:8]}@bcc.test")
        s.add_all([sub_a, sub_b])
        await s.flush()

        def user(sub: SubAccount, email: str, role: str) -> User:
            return User(sub_account_id=sub.id, email=email, email_normalized=email.lower(), name=email.split("@")[0], role=role)

        admin_a, user_a, user_a2 = (
            user(sub_a, "boss@acme.test", "admin"),
            user(sub_a, "alice@acme.test", "user"),
            user(sub_a, "bob@acme.test", "user"),
        )
        user_b = user(sub_b, "carol@other.test", "admin")
        s.add_all([admin_a, user_a, user_a2, user_b])
        await s.flush()

        contacts_a = [
            Contact(sub_account_id=sub_a.id, email=f"Customer{i}@Client.test", email_normalized=f"customer{i}@client.test", name=f"Customer {i}")
            for i in range(3)
        ]
        contact_b = Contact(sub_account_id=sub_b.id, email="secret@rival.test", email_normalized="secret@rival.test", name="Rival")
        s.add_all([*contacts_a, contact_b])
        await s.flush()

        box = rt.secrets
        ciphertext = box.encrypt_tokens(
            TokenSet(access_token=PLANTED_ACCESS_TOKEN, refresh_token=PLANTED_REFRESH_TOKEN, expires_at=T0, scope="Mail.ReadWrite")
        )

        def connection(u: User, sub: SubAccount, address: str) -> EmailConnection:
            return EmailConnection(
                sub_account_id=sub.id, user_id=u.id, provider="outlook", address=address, display_name=u.name,
                status="active", is_current=True, token_ciphertext=ciphertext,
                cursor={"inbox": "https://graph.test/delta?token=planted-cursor"},
                watch_id="planted-watch-id", client_state_hash=sha256_hex(PLANTED_CLIENT_STATE),
                last_sync_at=T0, messages_synced=42, confidential_skipped=3, connected_at=T0 - timedelta(days=1),
            )

        conn_a = connection(user_a, sub_a, "alice@acme.test")
        conn_a2 = connection(user_a2, sub_a, "bob@acme.test")
        conn_b = connection(user_b, sub_b, "carol@other.test")
        s.add_all([conn_a, conn_a2, conn_b])
        await s.flush()

        # Seven threads in A, one minute apart; thread 0 is the most recent.
        threads_a: list[Thread] = []
        for i in range(7):
            at = T0 - timedelta(minutes=i)
            contact = contacts_a[i % 3]
            thread = Thread(
                sub_account_id=sub_a.id, user_id=user_a.id, contact_id=contact.id, connection_id=conn_a.id,
                provider_thread_key=f"conv-{i}", subject=f"Subject {i}", snippet=f"snippet {i}",
                last_message_at=at, message_count=2, unread_count=1 if i % 2 == 0 else 0,
            )
            threads_a.append(thread)
        thread_b = Thread(
            sub_account_id=sub_b.id, user_id=user_b.id, contact_id=contact_b.id, connection_id=conn_b.id,
            provider_thread_key="conv-b", subject="Rival secret", snippet="secret", last_message_at=T0,
            message_count=1, unread_count=1,
        )
        s.add_all([*threads_a, thread_b])
        await s.flush()

        for i, thread in enumerate(threads_a):
            at = T0 - timedelta(minutes=i)
            contact = contacts_a[i % 3]
            first = Message(
                sub_account_id=sub_a.id, thread_id=thread.id, connection_id=conn_a.id, direction="outbound",
                origin="crm", status="sent", provider_message_id=f"p-{i}-1", message_id_header=f"<{i}-1@acme.test>",
                subject=thread.subject, from_email="alice@acme.test", from_name="Alice",
                to_addresses=[{"email": contact.email, "name": contact.name}], cc_addresses=[], bcc_addresses=[],
                html=f"<p>first {i}</p>", text=f"first {i}", snippet=f"first {i}", is_read=True,
                sent_at=at - timedelta(seconds=30),
            )
            last = Message(
                sub_account_id=sub_a.id, thread_id=thread.id, connection_id=conn_a.id, direction="inbound",
                origin="mailbox", status="synced", provider_message_id=f"p-{i}-2", message_id_header=f"<{i}-2@client.test>",
                subject=f"Re: {thread.subject}", from_email=contact.email, from_name=contact.name,
                to_addresses=[{"email": "alice@acme.test", "name": "Alice"}], cc_addresses=[{"email": "cc@client.test", "name": None}],
                bcc_addresses=[], html=f"<p>reply {i}</p>", text=f"reply {i}", snippet=f"reply {i}", is_read=i % 2 == 1,
                sent_at=at,
            )
            s.add_all([first, last])
        message_b = Message(
            sub_account_id=sub_b.id, thread_id=thread_b.id, connection_id=conn_b.id, direction="inbound", origin="mailbox",
            status="synced", provider_message_id="p-b", message_id_header="<b@rival.test>", subject="Rival secret",
            from_email="secret@rival.test", to_addresses=[], cc_addresses=[], bcc_addresses=[], html="<p>secret</p>",
            text="secret", snippet="secret", is_read=False, sent_at=T0,
        )
        s.add(message_b)
        await s.flush()

        with_attachment = threads_a[1]
        first_message_id = (
            await s.execute(
                Message.__table__.select().where(Message.thread_id == with_attachment.id).order_by(Message.sent_at)
            )
        ).first().id
        s.add(Attachment(message_id=first_message_id, sub_account_id=sub_a.id, filename="quote.pdf", content_type="application/pdf", size=1234, content=b"%PDF-planted"))

        skip_a = SyncSkip(
            sub_account_id=sub_a.id, connection_id=conn_a.id, user_id=user_a.id, provider_message_id="skip-1",
            reason="attachment_too_large", detail="video.mp4 is 9 MB", subject="Big video", from_email="customer0@client.test", sent_at=T0,
        )
        skip_a2 = SyncSkip(
            sub_account_id=sub_a.id, connection_id=conn_a2.id, user_id=user_a2.id, provider_message_id="skip-2",
            reason="attachment_type_not_allowed", detail="setup.exe", subject="Bob's exe", from_email="customer1@client.test", sent_at=T0,
        )
        # Confidential mail leaves an opaque row the API shows only as a count.
        confidential = SyncSkip(
            sub_account_id=sub_a.id, connection_id=conn_a.id, user_id=user_a.id, provider_message_id="conf-1", reason="confidential"
        )
        s.add_all([skip_a, skip_a2, confidential])
        await s.commit()

        seed = Seed(
            sub_a=sub_a.id, sub_b=sub_b.id, admin_a=admin_a.id, user_a=user_a.id, user_a2=user_a2.id, user_b=user_b.id,
            contacts_a=[c.id for c in contacts_a], contact_b=contact_b.id, threads_a=[t.id for t in threads_a],
            thread_b=thread_b.id, message_b=message_b.id, thread_with_attachment=with_attachment.id,
            connection_a=conn_a.id, connection_a2=conn_a2.id, connection_b=conn_b.id, token_ciphertext=ciphertext,
            skip_a=skip_a.id, skip_a2=skip_a2.id,
        )

    _, seed.agency_key = await rt.services.accounts.create_api_key(name="agency 1", agency_id="agency-1")
    _, seed.other_agency_key = await rt.services.accounts.create_api_key(name="agency 2", agency_id="agency-2")
    _, seed.sub_a_key = await rt.services.accounts.create_api_key(name="partner app", sub_account_id=seed.sub_a)
    settings = rt.settings
    seed.tokens = {
        "admin_a": mint_dev_token(settings, seed.admin_a, seed.sub_a, "admin"),
        "user_a": mint_dev_token(settings, seed.user_a, seed.sub_a, "user"),
        "user_a2": mint_dev_token(settings, seed.user_a2, seed.sub_a, "user"),
        "user_b": mint_dev_token(settings, seed.user_b, seed.sub_b, "admin"),
    }
    return seed


@dataclass
class RunningServer:
    base_url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, timeout=10)


async def start_server(app: Any) -> RunningServer:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(base_url=f"http://127.0.0.1:{port}", server=server, task=task)


@pytest.fixture(scope="session", params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    backend: str = request.param
    async with fresh_database(backend, tmp_path_factory.mktemp(f"api-{backend}")) as url:
        settings = make_settings(url)
        rt = await build_runtime(settings)
        try:
            seed = await seed_database(rt)
            server = await start_server(create_app(settings, runtime=rt))
            try:
                async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                    yield Api(base_url=server.base_url, rt=rt, settings=settings, seed=seed, http=http, backend=backend)
            finally:
                await server.stop()
        finally:
            await close_runtime(rt)


@pytest.fixture
def introspection(api: Api) -> Iterator[None]:
    """Schema introspection on for one test (EMAILSYNC_INTROSPECTION, off by default)."""
    api.settings.introspection = True
    try:
        yield
    finally:
        api.settings.introspection = False
