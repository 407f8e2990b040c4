"""Message bodies made safe to serve: HTML sanitized with nh3, a plain-text snippet."""

from __future__ import annotations

import html as html_lib
import re

import nh3

_ALLOWED_URL_SCHEMES = {"http", "https", "mailto", "cid"}
_WS = re.compile(r"\s+")
_TAGS = re.compile(r"<[^>]+>")
_DROP_BLOCKS = re.compile(r"<(script|style|head|title)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def sanitize_html(raw: str | None) -> str | None:
    if not raw:
        return None
    return nh3.clean(raw, url_schemes=_ALLOWED_URL_SCHEMES, link_rel="noopener noreferrer nofollow")


def html_to_text(raw: str) -> str:
    text = _TAGS.sub(" ", _DROP_BLOCKS.sub(" ", raw))
    return _WS.sub(" ", html_lib.unescape(text)).strip()


def snippet(text: str | None, html: str | None, length: int = 200) -> str:
    source = text if text else (html_to_text(html) if html else "")
    flat = _WS.sub(" ", source).strip()
    return flat if len(flat) <= length else flat[: length - 1].rstrip() + "…"
