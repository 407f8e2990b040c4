"""Demo data for ``emailsync dev``: a sub-account, its users and contacts, sandbox mailboxes.

Idempotent: running it again finds what is there.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from db.engine import create_engine, create_sessionmaker
from db.models import Contact, SubAccount, User
from db.repositories import contacts, relays, tenancy
from sync_engine.crypto import SecretBox

DEMO_AGENCY = "demo-agency"
DEMO_SUB_ACCOUNT = "Demo Realty"
DEMO_USERS = [
    ("olivia@demo-realty.example", "Olivia Owner", "admin", "outlook"),
    ("sam@demo-realty.example", "Sam Seller", "user", "gmail"),
]
DEMO_CONTACTS = [("ann@client.example", "Ann Buyer"), ("bob@client.example", "Bob Renter")]


DEMO_RELAY_FROM = ("news@demo-realty.example", "Demo Realty")


@dataclass
class DemoRelay:
    """The sandbox's SMTP catcher, seeded as the demo sub-account's email provider."""

    port: int
    username: str
    password: str
    encryption_keys: str


@dataclass
class DemoIds:
    sub_account_id: str
    users: dict[str, str]  # email -> user id
    bcc_sync_address: str


async def seed_demo(database_url: str, sandbox_base_url: str, ca_file: str, *, gmail_topic: str,
                    gmail_push_endpoint: str, gmail_push_audience: str, gmail_push_service_account: str,
                    relay: DemoRelay) -> DemoIds:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            account = await tenancy.sub_account_named(session, DEMO_AGENCY, DEMO_SUB_ACCOUNT)
            if account is None:
                account = SubAccount(agency_id=DEMO_AGENCY, name=DEMO_SUB_ACCOUNT, labs_two_way_sync=True,
                                     bcc_sync_address="sync-demo-realty@bcc.emailsync.example")
                await tenancy.add_sub_account(session, account)
            users: dict[str, str] = {}
            for email, name, role, _provider in DEMO_USERS:
                user = await tenancy.user_by_email(session, account.id, email)
                if user is None:
                    user = User(sub_account_id=account.id, email=email, email_normalized=email, name=name, role=role)
                    await tenancy.add_user(session, user)
                users[email] = str(user.id)
            known = await contacts.contacts_by_emails(session, account.id, [email for email, _ in DEMO_CONTACTS])
            for email, name in DEMO_CONTACTS:
                if email not in known:
                    await contacts.add_contact(session, Contact(sub_account_id=account.id, email=email,
                                                                email_normalized=email, name=name))
            await _seed_relay(session, account.id, relay)
            ids = DemoIds(str(account.id), users, account.bcc_sync_address)
    finally:
        await engine.dispose()
    async with httpx.AsyncClient(base_url=sandbox_base_url, verify=ssl.create_default_context(cafile=ca_file)) as client:
        for email, name, _role, provider in DEMO_USERS:
            response = await client.post("/_sandbox/mailboxes", json={"provider": provider, "address": email, "name": name})
            response.raise_for_status()
        # What an operator configures in Google Cloud: Pub/Sub pushes the watch topic to our webhook.
        response = await client.post("/_sandbox/google/pubsub/subscriptions", json={
            "topic": gmail_topic, "pushEndpoint": gmail_push_endpoint, "audience": gmail_push_audience,
            "serviceAccountEmail": gmail_push_service_account})
        response.raise_for_status()
    return ids


async def _seed_relay(session: Any, sub_account_id: Any, relay: DemoRelay) -> None:
    """Point the sub-account's email provider at this run's SMTP catcher (its port changes
    between runs), unless someone configured another relay by hand."""
    row = await relays.relay_of(session, sub_account_id)
    if row is not None and row.host != "127.0.0.1":
        return
    values = {"host": "127.0.0.1", "port": relay.port, "tls_mode": "starttls", "username": relay.username,
              "password_ciphertext": SecretBox.from_setting(relay.encryption_keys).encrypt_json(relay.password),
              "from_email": DEMO_RELAY_FROM[0], "from_name": DEMO_RELAY_FROM[1]}
    await relays.save_relay(session, sub_account_id, values)
