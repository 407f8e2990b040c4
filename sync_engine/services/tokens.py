"""Mailbox clients built from a connection's encrypted tokens."""

from __future__ import annotations

from sqlalchemy import update

from db.models import EmailConnection
from sync_engine.domain import TokenSet
from sync_engine.providers.base import MailboxClient
from sync_engine.runtime import Runtime


def client_for(rt: Runtime, conn: EmailConnection) -> MailboxClient:
    if conn.token_ciphertext is None:
        raise LookupError("connection has no tokens")
    tokens = rt.secrets.decrypt_tokens(conn.token_ciphertext)
    connection_id = conn.id

    async def store_refreshed(new_tokens: TokenSet) -> None:
        # Committed at once: a refresh token may be single-use (rotation).
        async with rt.sessions.begin() as session:
            await session.execute(
                update(EmailConnection)
                .where(EmailConnection.id == connection_id, EmailConnection.token_ciphertext.is_not(None))
                .values(token_ciphertext=rt.secrets.encrypt_tokens(new_tokens))
            )

    return rt.provider(conn.provider).client(tokens, store_refreshed)
