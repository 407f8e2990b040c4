"""Which browser origins may use the API: CORS on HTTP and the WebSocket origin check.

Only the origins in ``EMAILSYNC_ALLOWED_ORIGINS`` (and the API's own) are allowed; no
wildcard, no credentials mode (clients authenticate with a bearer token or an API key in
a header, never a cookie). Browsers do not apply CORS to WebSockets: Strawberry's own
origin check (its ``allowed_origins``, given this list) refuses a handshake whose Origin
is neither the API's host nor listed. Clients that are not browsers send no Origin and
are not affected.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from sync_engine.rules.redirects import normalised_origins
from sync_engine.settings import Settings

# What a browser app sends: credentials, JSON or multipart bodies, and the CSRF preflight
# headers multipart uploads need.
ALLOWED_HEADERS = ["authorization", "content-type", "x-api-key", "accept", "graphql-require-preflight",
                   "apollo-require-preflight", "x-apollo-operation-name"]
PREFLIGHT_MAX_AGE = 600


def allowed_origins(settings: Settings) -> list[str]:
    """The configured browser origins and the API's own, normalised (``rules.redirects``):
    what CORS, the WebSocket origin check and OAuth redirects all accept."""
    return sorted(normalised_origins([*settings.allowed_origins, settings.public_base_url]))


def cors_middleware(settings: Settings) -> Middleware:
    return Middleware(
        CORSMiddleware,
        allow_origins=allowed_origins(settings),
        allow_methods=["GET", "POST"],
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=False,
        max_age=PREFLIGHT_MAX_AGE,
    )
