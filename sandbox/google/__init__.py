"""Simulated Google services: OAuth 2.0 (authorize, token, revoke, certs),
the Gmail API v1 (profile, messages, threads, history, labels, watch, batch),
Gmail's per-user quota, and Pub/Sub push notifications with OIDC tokens."""

from __future__ import annotations

from starlette.routing import BaseRoute

from sandbox.context import Sandbox


def install(sandbox: Sandbox) -> list[BaseRoute]:
    """Create Google state on the sandbox and return its routes."""
    from sandbox.google import batch, history, messages, modify, oauth, sending, watch
    from sandbox.google.gmail_common import fault_body
    from sandbox.google.pubsub import Pusher
    from sandbox.google.quota import Quota
    from sandbox.google.signing import SigningKey
    from sandbox.google.state import GoogleConfig, GoogleState
    from sandbox.store import MailboxEvent, MessageEvent

    state = GoogleState(config=GoogleConfig(), signing_key=SigningKey())
    state.watches = watch.WatchRegistry()
    state.quota = Quota()
    sandbox.extensions["google"] = state
    # GET/PATCH /_sandbox/config serve these settings beside the core ones.
    sandbox.extensions.setdefault("config_sections", []).append(state.config)
    state.pusher = Pusher(sandbox)
    for hook in (state.reset, state.watches.reset, state.quota.reset, state.pusher.reset):
        sandbox.on_reset(hook)

    def on_store_event(event: MessageEvent | MailboxEvent) -> None:
        if isinstance(event, MailboxEvent) and event.kind == "cursors_expired" and event.mailbox.provider == "gmail":
            history.expire_history(state, event.mailbox)

    sandbox.store.add_listener(on_store_event)
    sandbox.faults.register_body(r"^/(upload/|batch/)?gmail/", fault_body)
    sandbox.faults.register_body(r"^/(token|revoke|o/oauth2/|oauth2/v4/token)", _oauth_fault_body)
    return [
        *oauth.routes(sandbox),
        *batch.routes(sandbox),
        *history.routes(sandbox),
        *sending.routes(sandbox),
        *modify.routes(sandbox),
        *messages.routes(sandbox),
        *watch.routes(sandbox),
    ]


def _oauth_fault_body(status: int) -> dict[str, str]:
    # google-auth retries these error codes on the token endpoint.
    error = "internal_failure" if status >= 500 or status == 429 else "invalid_request"
    return {"error": error, "error_description": f"Injected {status}."}
