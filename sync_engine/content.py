"""Message bodies made safe to serve and store: HTML sanitized with nh3, a plain-text
snippet, and text every database accepts.

Mail in the wild carries NUL characters (broken mailers, mislabelled UTF-16) and, from a
JSON payload, may carry lone surrogates: PostgreSQL refuses the first, UTF-8 cannot encode
the second, and either would fail the whole page on every retry. ``storable`` removes
both; every text that reaches a column goes through it.
"""

from __future__ import annotations

import html as html_lib
import re

import nh3

_ALLOWED_URL_SCHEMES = {"http", "https", "mailto", "cid"}
_WS = re.compile(r"\s+")
_TAGS = re.compile(r"<[^>]+>")
_DROP_BLOCKS = re.compile(r"<(script|style|head|title)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def storable(value: str | None) -> str | None:
    """``value`` without NUL characters and with lone surrogates replaced (U+FFFD)."""
    if not value:
        return value
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    return value


def sanitize_html(raw: str | None) -> str | None:
    raw = storable(raw)
    if not raw:
        return None
    return storable(nh3.clean(raw, url_schemes=_ALLOWED_URL_SCHEMES, link_rel="noopener noreferrer nofollow"))


def html_to_text(raw: str) -> str:
    text = _TAGS.sub(" ", _DROP_BLOCKS.sub(" ", raw))
    return _WS.sub(" ", html_lib.unescape(text)).strip()


def snippet(text: str | None, html: str | None, length: int = 200) -> str:
    source = storable(text) if text else (html_to_text(storable(html) or "") if html else "")
    flat = _WS.sub(" ", source).strip()
    return flat if len(flat) <= length else flat[: length - 1].rstrip() + "…"
