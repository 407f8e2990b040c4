"""A browser app on another origin, in a real browser (Debian's Chromium): from an
allowed origin it queries threads (a CORS preflight, then the POST) and receives a
subscription event over the WebSocket; from any other origin both are refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from emailsync.asgi import create_app
from sync_engine.events import DomainEvent, EventType
from tests.integration.api.conftest import Api, RunningServer, start_server
from tests.support.chromium import chromium, guarded_page  # noqa: F401  (chromium is a fixture)

PAGE = """<!doctype html><html><body>
<p>threads: <span id="threads"></span></p><p>socket: <span id="socket"></span></p>
<p>event: <span id="event"></span></p><p>error: <span id="error"></span></p>
<script>
const api = %(api)s, token = %(token)s;
async function run() {
  const answer = await fetch(api + "/graphql", {method: "POST", headers: {
    "content-type": "application/json", "authorization": "Bearer " + token},
    body: JSON.stringify({query: "{ threads(first: 5) { edges { node { id } } } }"})});
  const body = await answer.json();
  document.getElementById("threads").textContent = String(body.data.threads.edges.length);
  const ws = new WebSocket(api.replace("http", "ws") + "/graphql", "graphql-transport-ws");
  ws.onopen = () => ws.send(JSON.stringify({type: "connection_init", payload: {authorization: "Bearer " + token}}));
  ws.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "connection_ack") {
      ws.send(JSON.stringify({id: "1", type: "subscribe", payload: {query: "subscription { inboxEvents { type } }"}}));
      document.getElementById("socket").textContent = "subscribed";
    } else if (data.type === "next") {
      document.getElementById("event").textContent = data.payload.data.inboxEvents.type;
    }
  };
  ws.onclose = (closed) => { document.getElementById("socket").textContent = "closed " + closed.code; };
}
run().catch((failure) => { document.getElementById("error").textContent = String(failure); });
</script></body></html>"""


async def page_server(config: dict[str, str]) -> RunningServer:
    """The SPA: one page on its own origin (another port of this machine), calling the API
    at ``config["api"]`` with ``config["token"]`` (read when the page is served)."""

    async def index(request: object) -> HTMLResponse:
        return HTMLResponse(PAGE % {"api": json.dumps(config["api"]), "token": json.dumps(config["token"])})

    return await start_server(Starlette(routes=[Route("/", index)]))


def browser_origin(server: RunningServer) -> str:
    """The page's origin as the browser loads it: localhost:<port> (the API is 127.0.0.1)."""
    return server.base_url.replace("127.0.0.1", "localhost")


@pytest.fixture
async def spa_and_api(api: Api, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningServer]:
    """An SPA on an allowed origin, and an API server built for it (CORS is set up when
    the app is built)."""
    config = {"token": api.token("user_a")}
    spa = await page_server(config)
    monkeypatch.setattr(api.rt.settings, "allowed_origins", [browser_origin(spa)])
    server = await start_server(create_app(api.settings, runtime=api.rt))
    config["api"] = server.base_url
    try:
        yield spa
    finally:
        await spa.stop()
        await server.stop()


async def text_of(page: Page, element: str) -> str:
    return (await page.text_content(f"#{element}")) or ""


async def test_an_allowed_origin_queries_and_subscribes(
    api: Api, spa_and_api: RunningServer, chromium: Browser  # noqa: F811
) -> None:
    async with guarded_page(chromium) as (page, guard):
        await page.goto(browser_origin(spa_and_api) + "/")
        await page.wait_for_function("document.getElementById('socket').textContent === 'subscribed' "
                                     "|| document.getElementById('error').textContent !== ''")
        assert await text_of(page, "error") == ""
        assert int(await text_of(page, "threads")) > 0
        # A change in the sub-account, announced on the event bus as the sync engine does (the
        # shared seed stays as it is); repeated until the subscription is live on the server.
        event = DomainEvent(type=EventType.MESSAGE_UPDATED, sub_account_id=str(api.seed.sub_a),
                            thread_id=str(api.seed.threads_a[0]))
        for _ in range(5):
            await api.emit(event)
            try:
                await page.wait_for_function("document.getElementById('event').textContent !== ''", timeout=2000)
                break
            except PlaywrightTimeout:
                continue
        assert await text_of(page, "event") == "MESSAGE_UPDATED"
        guard.assert_stayed_local()


async def test_another_origin_is_refused_on_http_and_on_the_websocket(api: Api, chromium: Browser) -> None:  # noqa: F811
    api_server = await start_server(create_app(api.settings, runtime=api.rt))  # allows no browser origin
    spa = await page_server({"api": api_server.base_url, "token": api.token("user_a")})
    try:
        async with guarded_page(chromium) as (page, _guard):
            await page.goto(browser_origin(spa) + "/")
            await page.wait_for_function("document.getElementById('error').textContent !== ''")
            assert "Failed to fetch" in await text_of(page, "error")
            # The same page's WebSocket, opened directly: refused at the handshake.
            code = await page.evaluate("""(api) => new Promise((done) => {
                const ws = new WebSocket(api.replace("http", "ws") + "/graphql", "graphql-transport-ws");
                ws.onopen = () => done("opened");
                ws.onclose = (closed) => done("closed " + closed.code);
            })""", api_server.base_url)
            assert code != "opened" and code.startswith("closed")
    finally:
        await spa.stop()
        await api_server.stop()

    # Without a browser's Origin (a partner's server), the API answers as always; a preflight
    # from a foreign origin gets no CORS grant.
    preflight = await api.http.options("/graphql", headers={
        "origin": "https://evil.example", "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type"})
    assert "access-control-allow-origin" not in preflight.headers
