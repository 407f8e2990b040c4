"""No open redirect after a sign-in: the redirectUri's origin must be exactly an allowed one."""

from __future__ import annotations

import pytest

from sync_engine.rules.redirects import is_allowed_redirect, normalised_origins, origin_of, redirect_uri_problem

ALLOWED = ["https://app.example", "http://127.0.0.1:8000", "https://[::1]:8443", "https://xn--bcher-kva.example"]


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/settings/email",
        "https://app.example",
        "https://app.example/",
        "https://APP.Example/settings",  # host case
        "HTTPS://app.example/settings",  # scheme case
        "https://app.example:443/settings",  # default port
        "https://app.example/settings?tab=email&x=1",
        "https://app.example/#/settings/email",  # hash-routed SPA
        "https://app.example/settings#top",
        "https://app.example?next=https://evil.example",  # query text is not the origin
        "http://127.0.0.1:8000/connected",
        "https://[::1]:8443/x",
        "https://xn--bcher-kva.example/",  # punycode spelled exactly as allowed
    ],
)
def test_allowed(uri: str) -> None:
    assert redirect_uri_problem(uri, ALLOWED) is None, uri
    assert is_allowed_redirect(uri, ALLOWED)


@pytest.mark.parametrize(
    "uri",
    [
        # Not allowed origins.
        "https://evil.example/",
        "http://app.example/settings",  # another scheme is another origin
        "https://app.example:8443/settings",  # another port
        "http://127.0.0.1:8001/connected",
        "http://127.0.0.1/connected",
        "http://localhost:8000/connected",  # same machine, another origin
        "https://app.example.evil.example/",
        "https://evil.example/app.example",
        "https://app.example./settings",  # trailing dot: another origin to a browser
        "https://sub.app.example/",
        # Credentials before the host.
        "https://app.example@evil.example/",
        "https://app.example:443@evil.example/",
        "https://@app.example/",
        "https://user:pass@app.example/",
        "https://evil.example\\@app.example/",
        # Backslashes, which browsers read as slashes.
        "https:\\\\evil.example/",
        "https://app.example\\evil.example/",
        "https://evil.example\\.app.example/",
        "https://app.example/\\evil",
        # Other schemes and scheme tricks.
        "javascript:alert(1)",
        "JaVaScRiPt:alert(document.domain)//https://app.example",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ftp://app.example/",
        "ws://app.example/",
        "https:app.example/settings",
        "https:/app.example/settings",
        "https:///app.example/settings",
        # Relative and protocol-relative.
        "//evil.example/",
        "///evil.example",
        "/settings",
        "settings",
        "",
        # Whitespace and control characters.
        " https://app.example/",
        "https://app.example/ ",
        "https://app.example/\r\nSet-Cookie: x=1",
        "https://app.example/\tx",
        "https://app.exa\tmple/",
        "https://app.example/\x00",
        "\x01https://app.example/",
        "https://app.example/\x7f",
        # IDN and percent-encoding in the host.
        "https://bücher.example/",
        "https://аpp.example/",  # Cyrillic a
        "https://app\u3002example/",  # ideographic full stop
        "https://ａpp.example/",  # fullwidth a (NFKC folds it)
        "https://app%2eexample/",
        "https://%61pp.example/",
        "https://app.example%2f@evil.example/",
        "https://app.example%00.evil.example/",
        # Ports that are not ports.
        "https://app.example:0/",
        "https://app.example:65536/",
        "https://app.example:/",
        "https://app.example:44x3/",
        "https://app.example:+443/",
        # Zone ids and broken IPv6 literals.
        "https://[::1%25eth0]:8443/",
        "https://[::1:8443/",
        # Too long.
        "https://app.example/" + "a" * 2000,
    ],
)
def test_refused(uri: str) -> None:
    assert redirect_uri_problem(uri, ALLOWED) is not None, uri
    assert not is_allowed_redirect(uri, ALLOWED)


def test_nothing_allowed_refuses_everything() -> None:
    assert redirect_uri_problem("https://app.example/", []) is not None


@pytest.mark.parametrize(
    "url,origin",
    [
        ("https://App.Example:443/x?y#z", "https://app.example"),
        ("http://app.example:80", "http://app.example"),
        ("http://app.example:8080/", "http://app.example:8080"),
        ("https://[::1]:443/", "https://[::1]"),
        ("https://app.example@evil.example", None),
        ("mailto:a@app.example", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_configured_origins_are_normalised_and_bad_entries_dropped() -> None:
    assert normalised_origins(["https://App.Example:443/", " http://127.0.0.1:8000 ", "*", "null",
                               "https://a@b.example", "javascript:x"]) == {
        "https://app.example", "http://127.0.0.1:8000"}
