"""Simulated Microsoft services: identity platform (OAuth2/OIDC), Graph mail,
delta query, change notifications (webhooks) and Graph's throttling."""

from __future__ import annotations

from starlette.routing import BaseRoute

from sandbox.context import Sandbox


def install(sandbox: Sandbox) -> list[BaseRoute]:
    """Create Microsoft state on the sandbox and return its routes."""
    from sandbox.microsoft import batch, delta, graph_mail, identity, subscriptions
    from sandbox.microsoft.graph_common import fault_body
    from sandbox.microsoft.notifier import Notifier
    from sandbox.microsoft.state import MicrosoftState, SigningKey
    from sandbox.microsoft.throttling import Throttle

    state = MicrosoftState(
        signing_key=SigningKey(),
        delta=delta.DeltaRegistry(),
        subscriptions=subscriptions.SubscriptionRegistry(),
        throttle=Throttle(),
        application_id="00000000-0000-0000-0000-00000000e5c0",
    )
    sandbox.extensions["microsoft"] = state
    notifier = Notifier(sandbox)
    state.extra["notifier"] = notifier
    for registry in (state.delta, state.subscriptions, state.throttle, notifier):
        sandbox.on_reset(registry.reset)
    sandbox.faults.register_body(r"^/v1\.0/", fault_body)
    sandbox.faults.register_body(r"/oauth2/v2\.0/", _identity_fault_body)
    return [
        *identity.routes(sandbox),
        *delta.routes(sandbox),
        *subscriptions.routes(sandbox),
        *batch.routes(sandbox),
        *graph_mail.routes(sandbox),
    ]


def _identity_fault_body(status: int) -> dict[str, object]:
    error = "temporarily_unavailable" if status >= 500 or status == 429 else "invalid_request"
    return {"error": error, "error_description": f"AADSTS90033: A transient error has occurred (injected {status}).",
            "error_codes": [90033]}
