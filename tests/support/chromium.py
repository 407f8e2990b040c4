"""A real browser for tests: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright.

Playwright never downloads a browser here (no ``playwright install``): it drives the
system Chromium, which ``.ci/run`` installs when it is missing. Without it the tests
that ask for a browser fail, with a message saying how to install it; they never skip.

Use in a test module (the fixture lives here, so import it)::

    from tests.support.chromium import chromium  # noqa: F401  (a fixture)

    async def test_x(chromium: Browser) -> None:
        async with guarded_page(chromium) as (page, guard):
            await page.goto("http://127.0.0.1:8000/...")
            ...
            guard.assert_stayed_local()

or, outside pytest fixtures, ``async with launch_chromium() as browser: ...``.

``guarded_page`` opens a fresh context whose every request (HTTP and WebSocket) to a
host other than the loopback names is aborted and recorded: pages on several loopback
origins (``127.0.0.1:<port>``, ``localhost:<port>``) work, nothing reaches another
machine, and the test can assert that nothing tried. Console errors (CSP violations
among them) and uncaught page errors are recorded too.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Route, WebSocketRoute, async_playwright
from playwright.async_api import Error as PlaywrightError

CHROMIUM = Path(os.environ.get("EMAILSYNC_TEST_CHROMIUM", "/usr/bin/chromium"))

# Flags that work on these machines (root, no display, closed network): without the
# background-networking ones Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# URL schemes that never touch the network.
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-extension", "devtools"})

MISSING_CHROMIUM = (
    f"Chromium is not installed at {CHROMIUM}: the browser tests need Debian's chromium "
    "(`apt-get install -y chromium`, as .ci/run does). Never `playwright install`."
)


def require_chromium() -> Path:
    """The Chromium executable, or a test failure (never a skip) saying how to get it."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    return CHROMIUM


def is_local_url(url: str) -> bool:
    """True for a URL that cannot leave this machine (loopback host, or no network at all)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """Headless Chromium with the flags above and a fresh, empty profile (Playwright's
    ``launch`` makes a new temporary user-data dir for each browser and removes it)."""
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """One browser per test module; tests open their own contexts (``guarded_page``)."""
    async with launch_chromium() as browser:
        yield browser


@dataclass
class NetworkGuard:
    """What a guarded context tried: requests refused for leaving the machine, every
    request and WebSocket URL seen, console errors and uncaught page errors."""

    blocked: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    _watched: set[int] = field(default_factory=set)

    async def install(self, context: BrowserContext) -> None:
        await context.route("**/*", self._route)
        await context.route_web_socket(lambda url: not is_local_url(url), self._refuse_websocket)
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("page", self.watch)

    def watch(self, page: Page) -> None:
        if id(page) in self._watched:
            return
        self._watched.add(id(page))
        page.on("console", self._console)
        page.on("websocket", lambda ws: self.websockets.append(ws.url))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    async def _route(self, route: Route) -> None:
        url = route.request.url
        if is_local_url(url):
            await route.continue_()
        else:
            self.blocked.append(url)
            await route.abort("blockedbyclient")

    async def _refuse_websocket(self, ws: WebSocketRoute) -> None:
        # Never connected to the server: the page's socket just closes.
        self.blocked.append(ws.url)
        await ws.close(code=1008, reason="off-machine connection refused by the test")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def off_machine(self) -> list[str]:
        """Everything that tried to reach another host, blocked or seen."""
        seen = [url for url in [*self.requests, *self.websockets] if not is_local_url(url)]
        return sorted(set(self.blocked) | set(seen))

    def assert_stayed_local(self) -> None:
        assert not self.off_machine(), f"requests tried to leave the machine: {self.off_machine()}"


@asynccontextmanager
async def guarded_context(browser: Browser, **context_options: object) -> AsyncIterator[tuple[BrowserContext, NetworkGuard]]:
    """A fresh browser context (no cookies, no storage) with a ``NetworkGuard`` installed."""
    context = await browser.new_context(**context_options)  # type: ignore[arg-type]
    guard = NetworkGuard()
    try:
        await guard.install(context)
        yield context, guard
    finally:
        try:
            await context.close()
        except PlaywrightError:
            pass


@asynccontextmanager
async def guarded_page(browser: Browser, **context_options: object) -> AsyncIterator[tuple[Page, NetworkGuard]]:
    """One page in a ``guarded_context``."""
    async with guarded_context(browser, **context_options) as (context, guard):
        page = await context.new_page()
        guard.watch(page)  # no-op when the context's "page" event came first
        yield page, guard


__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "NetworkGuard",
    "chromium",
    "guarded_context",
    "guarded_page",
    "is_local_url",
    "launch_chromium",
    "require_chromium",
]
