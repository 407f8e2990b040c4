"""GraphiQL, served offline.

``GET /graphql`` with ``Accept: text/html`` answers the GraphiQL page
(``GraphQLView.render_graphql_ide`` calls ``graphiql_page``). Strawberry's own page loads
React and GraphiQL from a CDN, so without internet it stays blank; this one loads them
from ``/static/graphiql/`` (``GraphiQLAssets``, mounted in ``api/app.py``), files vendored
under ``api/static/graphiql/`` (their origins and licences: ``SOURCES.md`` there).

The page carries a Content-Security-Policy that allows nothing but this origin (plus
``data:`` images and fonts, which GraphiQL's stylesheet embeds, and inline styles, which
its dialogs add at run time): no script, stylesheet, image, font, request or WebSocket
can come from or go to another host, and no inline script runs. Subscriptions use graphql-transport-ws on
the same origin, which ``connect-src 'self'`` covers.

Asset URLs carry ``?v=<content hash>``: a request with the current hash may be cached for
a year (``immutable``), any other is revalidated (ETag / Last-Modified).
"""

from __future__ import annotations

import hashlib
from functools import cache
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static" / "graphiql"
ASSETS_PATH = "/static/graphiql"

# What the page loads, in order (the UMD builds expect React, then ReactDOM, then GraphiQL).
STYLESHEETS = ("graphiql.min.css", "plugin-explorer.css", "emailsync-graphiql.css")
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
    "emailsync-graphiql.js",
)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        # GraphiQL's dialogs (react-remove-scroll-bar) add a <style> element at run time;
        # whatever CSS does, it can only load images and fonts from here (below).
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>emailsync GraphiQL</title>
    <link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 100 100'%3E%3Ctext y='.9em' font-size='80'%3E%26%23x2709;%3C/text%3E%3C/svg%3E">
{stylesheets}
  </head>
  <body>
    <div id="graphiql" class="graphiql-container">Loading...</div>
{scripts}
  </body>
</html>
"""


@cache
def asset_version(name: str) -> str:
    """A short hash of the asset's content (read once per process)."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:16]


def asset_url(root_path: str, name: str) -> str:
    return f"{root_path.rstrip('/')}{ASSETS_PATH}/{name}?v={asset_version(name)}"


def graphiql_html(root_path: str = "") -> str:
    stylesheets = "\n".join(
        f'    <link rel="stylesheet" href="{escape(asset_url(root_path, name))}">' for name in STYLESHEETS
    )
    scripts = "\n".join(f'    <script src="{escape(asset_url(root_path, name))}"></script>' for name in SCRIPTS)
    return _PAGE.format(stylesheets=stylesheets, scripts=scripts)


def graphiql_page(request: Request) -> Response:
    """The GraphiQL page, with its assets on this service and a CSP to keep it so."""
    return HTMLResponse(
        graphiql_html(request.scope.get("root_path", "")),
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": REVALIDATE,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


class GraphiQLAssets(StaticFiles):
    """``api/static/graphiql/`` as static files, with caching headers: a year for a URL
    carrying the file's current ``?v=`` hash, revalidation for any other."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC_DIR)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            requested = Request(scope).query_params.get("v")
            current = asset_version(path) if (STATIC_DIR / path).is_file() else None
            response.headers["Cache-Control"] = IMMUTABLE if requested and requested == current else REVALIDATE
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def graphiql_assets_route() -> Mount:
    """The route that serves the page's assets (``api/app.py`` mounts it)."""
    return Mount(ASSETS_PATH, app=GraphiQLAssets(), name="graphiql-assets")


__all__ = [
    "ASSETS_PATH",
    "CONTENT_SECURITY_POLICY",
    "GraphiQLAssets",
    "graphiql_assets_route",
    "graphiql_html",
    "graphiql_page",
]
