"""The browser's part of an OAuth sign-in, for tests and benchmarks.

Providers hand the answer back either with a redirect (query string: Google) or with
an auto-submitting form (``response_mode=form_post``: Microsoft). A browser follows
the first and, with scripts on, submits the second; these helpers do the same. Our
callback then sends the browser back to the app with a flow token
(``?emailConnectionFlow=``), which the app confirms (``tests.support.flows``).
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

MAX_HOPS = 10


class _AutoPostForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None and values.get("method", "").lower() == "post":
            self.action, self._in_form = values.get("action", ""), True
        elif tag == "input" and self._in_form and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def auto_post_form(response: httpx.Response) -> tuple[str, dict[str, str]] | None:
    """(action, fields) of the POST form an HTML page submits on load, or None."""
    if "text/html" not in response.headers.get("content-type", "") or "submit()" not in response.text:
        return None
    parser = _AutoPostForm()
    parser.feed(response.text)
    return (urljoin(str(response.url), parser.action), parser.fields) if parser.action else None


def handed_back(response: httpx.Response, redirect_uri: str) -> dict[str, str] | None:
    """The parameters this response hands to ``redirect_uri`` (a redirect's query or an
    auto-posting form's fields), or None when it goes somewhere else."""
    if response.is_redirect:
        location = response.headers["location"]
        return dict(parse_qsl(urlsplit(location).query)) if location.startswith(redirect_uri) else None
    form = auto_post_form(response)
    if form is not None and form[0].startswith(redirect_uri):
        return form[1]
    return None


async def provider_answer(browser: httpx.AsyncClient, authorization_url: str, redirect_uri: str) -> dict[str, str]:
    """Sign in at the provider and return what it hands back to ``redirect_uri`` (not sent there)."""
    response = await browser.get(authorization_url)
    for _ in range(MAX_HOPS):
        params = handed_back(response, redirect_uri)
        if params is not None:
            return params
        assert response.is_redirect, f"the provider did not hand back to {redirect_uri}: {response.status_code} {response.text[:300]}"
        response = await browser.get(urljoin(str(response.url), response.headers["location"]))
    raise AssertionError("too many hops before the provider handed back")


async def step(browser: httpx.AsyncClient, response: httpx.Response) -> httpx.Response | None:
    """The browser's next request after ``response`` (a redirect or an auto-posting form), or None."""
    if response.is_redirect:
        return await browser.get(urljoin(str(response.url), response.headers["location"]))
    form = auto_post_form(response)
    if form is not None:
        return await browser.post(form[0], data=form[1])
    return None


def flow_token_of(redirect: httpx.Response) -> str:
    """The flow token our callback's redirect hands to the app (fails on an error outcome)."""
    assert redirect.is_redirect, f"{redirect.status_code} {redirect.text[:300]}"
    location = redirect.headers["location"]
    params = dict(parse_qsl(urlsplit(location).query))
    assert "emailConnectionFlow" in params and "emailConnection" not in params, location
    return params["emailConnectionFlow"]


async def sign_in_until(browser: httpx.AsyncClient, authorization_url: str, stop_at: str) -> httpx.Response:
    """The whole chain (provider, then our callback) until a redirect to ``stop_at``; returns that redirect."""
    response: httpx.Response | None = await browser.get(authorization_url)
    for _ in range(MAX_HOPS):
        assert response is not None
        if response.is_redirect and response.headers["location"].startswith(stop_at):
            return response
        following = await step(browser, response)
        if following is None:
            raise AssertionError(f"sign-in stopped before {stop_at}: {response.status_code} {response.text[:300]}")
        response = following
    raise AssertionError(f"too many hops before {stop_at}")
