"""Mailbox clients built from a connection's encrypted tokens."""

from __future__ import annotations

from dataclasses import dataclass

from db.models import EmailConnection
from db.repositories import connections as connections_repo
from sync_engine.crypto import SecretBox
from sync_engine.domain import Provider, TokenSet
from sync_engine.providers.base import MailboxClient, MailProvider
from sync_engine.services.collaborators import ProviderRegistry, SessionFactory


@dataclass(frozen=True)
class Mailboxes:
    """The provider adapters, and clients for connected mailboxes whose refreshed tokens are
    stored back at once."""

    sessions: SessionFactory
    secrets: SecretBox
    providers: ProviderRegistry

    def configured(self, provider: Provider) -> bool:
        return provider in self.providers

    def provider(self, name: Provider | str) -> MailProvider:
        return self.providers[Provider(name)]

    def client_for(self, conn: EmailConnection) -> MailboxClient:
        if conn.token_ciphertext is None:
            raise LookupError("connection has no tokens")
        tokens = self.secrets.decrypt_tokens(conn.token_ciphertext)
        connection_id = conn.id

        async def store_refreshed(new_tokens: TokenSet) -> None:
            # Committed at once: a refresh token may be single-use (rotation).
            async with self.sessions.begin() as session:
                await connections_repo.store_refreshed_tokens(session, connection_id,
                                                              self.secrets.encrypt_tokens(new_tokens))

        return self.provider(conn.provider).client(tokens, store_refreshed)
