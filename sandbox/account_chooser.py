"""The sign-in page both identity providers show when no ``login_hint`` names an account:
a list of the sandbox's mailboxes of that provider, each a link that completes the sign-in."""

from __future__ import annotations

import html
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse

from sandbox.store import Mailbox


def account_chooser(request: Request, mailboxes: list[Mailbox], *, title: str, heading: str, empty: str) -> HTMLResponse:
    items = []
    for mailbox in mailboxes:
        params = dict(request.query_params)
        params["login_hint"] = mailbox.address
        href = f"{request.url.path}?{urlencode(params)}"
        items.append(
            f'<li><a class="account" href="{html.escape(href)}">{html.escape(mailbox.name)} '
            f"&lt;{html.escape(mailbox.address)}&gt;</a></li>"
        )
    body = "".join(items) or f"<li>{html.escape(empty)}</li>"
    return HTMLResponse(
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(heading)}</h1><ul>{body}</ul></body></html>"
    )
