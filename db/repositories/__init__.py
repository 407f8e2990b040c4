"""All SQL, one module per aggregate: connections (sync leases, push registrations,
sign-in flows, display reads), threads and messages, page_import (a mailbox page's
batch writes), outbox and bulk sends, contacts, skips, tenancy (sub-accounts, users,
API keys), events, operations (health and metrics).

Every query and write takes the sub-account it is scoped to, except those the engine's
jobs run on ids from our own queue. Hot lists are SQLAlchemy Core statements returning
plain rows: no ORM identity map or object graph on the read path (DESIGN.md section 5).
"""
