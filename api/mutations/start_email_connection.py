"""startEmailConnection: begin the OAuth sign-in of the caller's mailbox.

Completing it while a mailbox is connected replaces that mailbox ("update email").
The browser is sent to ``authorizationUrl``; the provider calls back
``/oauth/{provider}/callback``, which redirects to ``redirectUri`` with
``?emailConnectionFlow=<token>``; the app then calls ``completeEmailConnection`` with
it (nothing is connected before). ``redirectUri`` must be on an allowed origin
(``EMAILSYNC_ALLOWED_ORIGINS`` or the API's own): no open redirect.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.origins import allowed_origins
from api.types.email_connection import EmailProvider
from api.types.user_errors import EmailConnectionError, service_errors_as
from sync_engine.domain import Provider
from sync_engine.rules.addresses import is_valid_email
from sync_engine.rules.redirects import redirect_uri_problem
from sync_engine.services.errors import ServiceError


@strawberry.input(description="Which mailbox to connect, and where to come back to.")
class StartEmailConnectionInput:
    provider: EmailProvider = strawberry.field(description="The mailbox provider.")
    redirect_uri: str | None = strawberry.field(
        default=None,
        description="Absolute http(s) URL of the app page to return to after the sign-in, on an allowed origin "
        "(EMAILSYNC_ALLOWED_ORIGINS, or the API's own, e.g. its `/connected` page). The browser comes back with "
        "`?emailConnectionFlow=<token>` for `completeEmailConnection`, or `?emailConnection=error&reason=...`. "
        "Without it, the sign-in ends on a page of the API that says how to finish.",
    )
    login_hint: str | None = strawberry.field(
        default=None, description="The mailbox address to sign in with, pre-filled at the provider."
    )


@strawberry.type(description="Result of startEmailConnection.")
class StartEmailConnectionPayload:
    authorization_url: str | None = strawberry.field(
        default=None, description="Send the user's browser here to sign in."
    )
    user_errors: list[EmailConnectionError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )


@service_errors_as(StartEmailConnectionPayload, EmailConnectionError)
async def start_email_connection(
    info: Info, input: Annotated[StartEmailConnectionInput, strawberry.argument(description="The provider.")]
) -> StartEmailConnectionPayload:
    return StartEmailConnectionPayload(authorization_url=await begin_sign_in(info, input))


async def begin_sign_in(info: Info, input: StartEmailConnectionInput) -> str:
    """Validate the input and start the provider sign-in; returns the authorization URL."""

    viewer = info.context.require_user()
    if input.login_hint is not None and not is_valid_email(input.login_hint):
        raise ServiceError("INVALID_LOGIN_HINT", "loginHint must be an email address", "loginHint")
    if input.redirect_uri is not None:
        problem = redirect_uri_problem(input.redirect_uri, allowed_origins(info.context.runtime.settings))
        if problem is not None:
            raise ServiceError("INVALID_REDIRECT_URI", problem, "redirectUri")
    return await info.context.services.connections.start_connection(
        sub_account_id=viewer.sub_account_id,
        user_id=viewer.user_id,
        provider=Provider(input.provider.value),
        return_to=input.redirect_uri,
        login_hint=input.login_hint,
    )
