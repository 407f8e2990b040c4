"""Gmail / Google Workspace mailboxes over the Gmail API, signed in with Google OAuth.

Modules: ``auth`` (authorization code + PKCE, refresh through google-auth,
revocation), ``gmail_client`` (httpx, quota units, retries, throttling, token refresh,
batches), ``batch`` (the multipart batch format, pure), ``quota`` (unit costs and the
pacer), ``mapping`` (``format=full`` JSON -> domain, pure), ``compose`` (RFC 5322 for
sending, pure), ``sync`` (full pass + history increments), ``send`` (never twice),
``push`` (Pub/Sub OIDC verification), ``provider`` (the ``MailProvider`` /
``MailboxClient`` implementations).
"""

from sync_engine.providers.gmail.provider import (
    GmailMailboxClient,
    GmailProvider,
    build_gmail_provider,
)

__all__ = ["GmailMailboxClient", "GmailProvider", "build_gmail_provider"]
