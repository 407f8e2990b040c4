"""GraphiQL works offline: the page at GET /graphql loads its assets from this service
only (api/static/graphiql/, served at /static/graphiql/), under a same-origin CSP.

Driven as a user does: headless Chromium (tests/support/chromium.py) opens the page with
every request to another host refused and recorded, types an Authorization header in
the Headers pane, runs a query and a subscription (graphql-transport-ws), and reads the
result panel. Plus plain HTTP checks of the page and each asset it references.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from emailsync.asgi import create_app
from sync_engine.events import DomainEvent, EventType
from tests.integration.api.conftest import (
    Api,
    build_runtime,
    close_runtime,
    make_settings,
    seed_database,
    start_server,
)
from tests.support.chromium import chromium, guarded_page  # noqa: F401  (chromium: a fixture)
from tests.support.databases import SQLITE, fresh_database

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_TAB = 'button[data-name="headers"]'
HEADERS_EDITOR = "section.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
EXECUTE = "button.graphiql-execute-button"
# CodeMirror 5 keeps its editor object on the element (its documented API).
RESULT_CONTAINS = """(needle) => {
  const cm = document.querySelector('.graphiql-response .CodeMirror');
  return Boolean(cm && cm.CodeMirror.getValue().includes(needle));
}"""
RESULT_TEXT = "() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()"
EDITOR_TEXT = "(selector) => document.querySelector(selector).CodeMirror.getValue()"
QUERY_IN_URL = "(query) => new URLSearchParams(window.location.search).get('q') === query"


@pytest.fixture(scope="module")
async def graphiql_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """The API on loopback (SQLite, seeded), with introspection on: GraphiQL loads the
    schema by introspection, as under `emailsync dev`."""
    async with fresh_database(SQLITE, tmp_path_factory.mktemp("graphiql")) as url:
        settings = make_settings(url).model_copy(update={"introspection": True})
        rt = await build_runtime(settings)
        try:
            seed = await seed_database(rt)
            server = await start_server(create_app(settings, runtime=rt))
            try:
                async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                    yield Api(base_url=server.base_url, rt=rt, settings=settings, seed=seed, http=http, backend="sqlite")
            finally:
                await server.stop()
        finally:
            await close_runtime(rt)


class _References(HTMLParser):
    """Every URL an HTML page makes the browser load: (tag, attribute, url)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if any(name in values for name in ("src", "href", "srcset", "action", "data", "poster")):
            self.found.append((tag, values))


def _csp(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


async def test_page_references_only_local_assets_and_each_is_served(graphiql_api: Api) -> None:
    http = graphiql_api.http
    page = await http.get("/graphql", headers=HTML)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")

    csp = _csp(page.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no CDN
    assert csp["connect-src"] == ["'self'"]  # fetch and the graphql-transport-ws socket
    assert csp["frame-ancestors"] == ["'none'"]
    for name, sources in csp.items():
        allowed = {"'self'", "'none'", "data:"} | ({"'unsafe-inline'"} if name == "style-src" else set())
        assert set(sources) <= allowed, (name, sources)

    parser = _References()
    parser.feed(page.text)
    scripts = [attrs["src"] for tag, attrs in parser.found if tag == "script"]
    stylesheets = [attrs["href"] for tag, attrs in parser.found if tag == "link" and attrs.get("rel") == "stylesheet"]
    icons = [attrs["href"] for tag, attrs in parser.found if tag == "link" and attrs.get("rel") == "icon"]
    others = [(tag, attrs) for tag, attrs in parser.found if tag not in ("script", "link")]
    assert others == []
    assert len(scripts) + len(stylesheets) + len(icons) == len(parser.found)
    assert all(icon.startswith("data:") for icon in icons)
    names = {urlsplit(url).path.rsplit("/", 1)[-1] for url in scripts + stylesheets}
    assert {"react.production.min.js", "react-dom.production.min.js", "graphiql.min.js", "graphiql.min.css"} <= names

    for url, kind in [*((s, "text/javascript") for s in scripts), *((s, "text/css") for s in stylesheets)]:
        parts = urlsplit(url)
        # Same origin: a path, no scheme, no host (not even protocol-relative "//host").
        assert not parts.scheme and not parts.netloc and url.startswith("/static/graphiql/"), url
        asset = await http.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].split(";")[0] == kind, (url, asset.headers["content-type"])
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable", url
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert len(asset.content) > 0
        # Revalidation works, and a URL without the current version is not cached for a year.
        again = await http.get(url, headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304, url
        unversioned = await http.get(parts.path)
        assert unversioned.status_code == 200 and unversioned.headers["cache-control"] == "no-cache"


async def test_unknown_asset_is_404_and_the_licences_are_served(graphiql_api: Api) -> None:
    assert (await graphiql_api.http.get("/static/graphiql/nope.js")).status_code == 404
    assert (await graphiql_api.http.get("/static/graphiql/../graphiql.py")).status_code == 404
    for name in ("graphiql.LICENSE", "react.LICENSE", "react-dom.LICENSE", "THIRD_PARTY_LICENSES.txt"):
        licence = await graphiql_api.http.get(f"/static/graphiql/licenses/{name}")
        assert licence.status_code == 200 and "Permission is hereby granted" in licence.text, name


async def _set_editor(page: Page, selector: str, text: str) -> None:
    """Replace an editor's text the way a user pastes it."""
    await page.locator(selector).click()
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(text)
    assert await page.evaluate(EDITOR_TEXT, selector) == text


async def _set_query(page: Page, query: str) -> None:
    """Paste a query, then wait until GraphiQL has taken it in: it parses an edit after a
    short debounce (until then the run button would send the previous operation, over
    HTTP instead of the WebSocket for a subscription), and then the page puts the
    query in the address bar (``?q=``)."""
    await _set_editor(page, QUERY_EDITOR, query)
    await page.wait_for_function(QUERY_IN_URL, arg=query, timeout=10_000)


async def _result(page: Page, needle: str, *, timeout_ms: float = 15_000) -> dict[str, object]:
    await page.wait_for_function(RESULT_CONTAINS, arg=needle, timeout=timeout_ms)
    return json.loads(await page.evaluate(RESULT_TEXT))


async def test_graphiql_runs_a_query_and_a_subscription_with_nothing_leaving_the_machine(
    graphiql_api: Api, chromium: Browser  # noqa: F811  (the imported fixture)
) -> None:
    api = graphiql_api
    async with guarded_page(chromium) as (page, guard):
        response = await page.goto(f"{api.base_url}/graphql")
        assert response is not None and response.status == 200

        # The editor renders: React, ReactDOM, GraphiQL and the page script all loaded and ran.
        try:
            await expect(page.locator(QUERY_EDITOR)).to_be_visible(timeout=15_000)
        except AssertionError as exc:
            raise AssertionError(
                f"GraphiQL did not render; refused for leaving the machine: {guard.blocked}; "
                f"console errors: {guard.console_errors}"
            ) from exc
        # The schema arrived by introspection through the page's fetcher: the docs list the roots.
        await page.click('button[aria-label="Show Documentation Explorer"]')
        await expect(page.locator(".graphiql-doc-explorer")).to_contain_text("Subscription", timeout=15_000)

        # The Authorization header, typed into GraphiQL's Headers pane.
        await page.click(HEADERS_TAB)
        await _set_editor(page, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {api.token('user_a')}"}))

        await _set_query(page, "{ viewer { kind } }")
        await page.click(EXECUTE)
        assert await _result(page, '"viewer"') == {"data": {"viewer": {"kind": "USER"}}}

        # A subscription: over graphql-transport-ws on the same origin, authenticated by the
        # same header (GraphiQL sends the headers as the connection_init payload).
        await _set_query(page, "subscription { inboxEvents { type thread { subject } } }")
        await page.click(EXECUTE)
        event = DomainEvent(
            type=EventType.MESSAGE_ADDED, sub_account_id=str(api.seed.sub_a), thread_id=str(api.seed.threads_a[3])
        )
        # The server subscribes to the event bus asynchronously after `subscribe`: publish
        # until the result panel shows the event.
        for _ in range(75):
            await api.emit(event)
            try:
                shown = await _result(page, "MESSAGE_ADDED", timeout_ms=200)
                break
            except PlaywrightTimeoutError:
                continue
        else:
            raise AssertionError(f"no subscription event in GraphiQL; result panel: {await page.evaluate(RESULT_TEXT)!r}")
        assert shown == {"data": {"inboxEvents": {"type": "MESSAGE_ADDED", "thread": {"subject": "Subject 3"}}}}
        ws_url = api.base_url.replace("http://", "ws://") + "/graphql"
        assert guard.websockets == [ws_url]

        # Nothing tried to leave the machine; the page really loaded its assets from here;
        # the CSP refused nothing the page needed.
        guard.assert_stayed_local()
        assert guard.blocked == []
        loaded = {urlsplit(url).path for url in guard.requests}
        assert {"/static/graphiql/graphiql.min.js", "/static/graphiql/react.production.min.js"} <= loaded
        assert not [e for e in guard.console_errors if "Content Security Policy" in e], guard.console_errors
        assert guard.page_errors == []


async def test_the_guard_refuses_and_records_requests_to_other_hosts(chromium: Browser) -> None:  # noqa: F811
    """The browser test above can fail: a page that reaches for another host is caught."""
    async with guarded_page(chromium) as (page, guard):
        await page.set_content(
            '<img src="https://cdn.example.com/logo.png"><script src="http://203.0.113.7/app.js"></script>',
            wait_until="load",
        )
        # Resolves when the socket closes (refused), or after 10 s if it never does.
        closed = await page.evaluate(
            """() => new Promise((resolve) => {
                 const ws = new WebSocket("wss://push.example.com/socket");
                 ws.onclose = () => resolve("closed");
                 setTimeout(() => resolve("still open"), 10000);
               })"""
        )
        assert closed == "closed"
        assert sorted(guard.blocked) == [
            "http://203.0.113.7/app.js",
            "https://cdn.example.com/logo.png",
            "wss://push.example.com/socket",
        ]
        with pytest.raises(AssertionError, match="leave the machine"):
            guard.assert_stayed_local()
