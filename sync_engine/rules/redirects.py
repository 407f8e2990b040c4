"""Where the browser may be sent after a mailbox sign-in: no open redirect.

A ``redirectUri`` is accepted only when its origin (``scheme://host[:port]``) is
exactly one of the allowed origins: ``EMAILSYNC_ALLOWED_ORIGINS`` plus the API's own
``PUBLIC_BASE_URL``. Origins are compared after lower-casing scheme and host and
dropping a default port (``:443`` for https, ``:80`` for http), nothing more: no
Unicode or IDNA folding, no percent-decoding, no trailing-dot trimming. Anything a
browser might read differently from ``urllib`` is refused rather than interpreted:

- characters outside printable ASCII (whitespace, controls, raw Unicode hosts);
- backslashes (browsers treat ``\\`` as ``/`` in http(s) URLs);
- any scheme but http and https, and URLs without ``//host`` (``https:evil``);
- credentials before the host (``https://allowed.example@evil.example/``);
- hosts that are not plain LDH labels or a bracketed IPv6 literal (``%``-escapes,
  ``xn--`` punycode is allowed only if an allowed origin spells it exactly);
- ports that are not 1-65535.

Fragments are allowed (hash-routed SPAs): they never reach a server, and the flow
token is put in the query. Pure: no I/O, no settings object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MAX_REDIRECT_URI_LENGTH = 2000

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^(https?)://", re.IGNORECASE)
# LDH labels separated by dots (a trailing dot makes it another origin: refused by the
# exact comparison), or a bracketed IPv6 literal without a zone id.
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\]$")
_PORT = re.compile(r"^[0-9]{1,5}$")


def origin_of(url: str) -> str | None:
    """The normalised origin of an absolute http(s) URL, or None when the URL is not
    one this module accepts (see the module docstring)."""
    if not isinstance(url, str) or not url or len(url) > MAX_REDIRECT_URI_LENGTH:
        return None
    if any(not ("\x21" <= ch <= "\x7e") for ch in url) or "\\" in url:
        return None
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        return None
    scheme = scheme_match.group(1).lower()
    # The authority is what lies between "//" and the first "/", "?" or "#".
    authority = re.split(r"[/?#]", url[scheme_match.end():], maxsplit=1)[0]
    if not authority or "@" in authority or "%" in authority:
        return None
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[: end + 1], authority[end + 1:]
        if end < 0 or not _IPV6.match(host.lower()):
            return None
    else:
        host, _, port_text = authority.partition(":")
        rest = f":{port_text}" if ":" in authority else ""
    host = host.lower()
    if not host.startswith("[") and not _HOST.match(host):
        return None
    port: int | None = None
    if rest:
        if not rest.startswith(":") or not _PORT.match(rest[1:]):
            return None
        port = int(rest[1:])
        if not 1 <= port <= 65535:
            return None
    # Cross-check with urllib: the URL must mean the same authority to it.
    try:
        parts = urlsplit(url)
        parsed_port = parts.port
    except ValueError:
        return None
    if parts.netloc.lower() != authority.lower() or parsed_port != port:
        return None
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def normalised_origins(origins: Iterable[str]) -> frozenset[str]:
    """The usable entries of a configured origin list, normalised (a path or a trailing
    slash is ignored); entries that are not http(s) origins are dropped."""
    found = set()
    for entry in origins:
        origin = origin_of(entry.strip())
        if origin is not None:
            found.add(origin)
    return frozenset(found)


def redirect_uri_problem(uri: str, allowed_origins: Iterable[str]) -> str | None:
    """Why ``uri`` may not be a post-sign-in redirect target, or None when it may.

    ``allowed_origins`` holds the allowed origins (or URLs, whose origin counts); the
    caller includes the API's own public URL."""
    if not isinstance(uri, str) or len(uri) > MAX_REDIRECT_URI_LENGTH:
        return f"redirectUri must be at most {MAX_REDIRECT_URI_LENGTH} characters"
    origin = origin_of(uri)
    if origin is None:
        return ("redirectUri must be an absolute http(s) URL of plain ASCII, without credentials, "
                "backslashes or spaces")
    if origin not in normalised_origins(allowed_origins):
        return f"redirectUri's origin {origin} is not an allowed origin (EMAILSYNC_ALLOWED_ORIGINS)"
    return None


def is_allowed_redirect(uri: str, allowed_origins: Iterable[str]) -> bool:
    return redirect_uri_problem(uri, allowed_origins) is None
