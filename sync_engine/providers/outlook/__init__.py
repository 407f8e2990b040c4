"""Outlook / Microsoft 365 mailboxes over Microsoft Graph, signed in with msal.

Modules: ``auth`` (msal), ``graph_client`` (httpx, retries, throttling, token
refresh), ``mapping`` (Graph JSON <-> domain, pure), ``sync`` (delta), ``send``
(draft-based, never twice), ``push`` (change/lifecycle notifications), ``provider``
(the ``MailProvider``/``MailboxClient`` implementations).
"""

from sync_engine.providers.outlook.provider import (
    OutlookMailboxClient,
    OutlookProvider,
    build_outlook_provider,
)

__all__ = ["OutlookMailboxClient", "OutlookProvider", "build_outlook_provider"]
