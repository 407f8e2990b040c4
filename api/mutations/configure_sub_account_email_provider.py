"""configureSubAccountEmailProvider: set the sub-account's SMTP relay (admins).

The connection is tested before anything is saved; a failure is a `userError` saying
where it failed. The password is write-only: omit it to keep the stored one.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.context import Info
from api.types.sending import SmtpTlsMode, SubAccountEmailProvider, provider_from_row
from api.types.user_errors import EmailProviderError, service_errors_as
from sync_engine import domain
from sync_engine.services.relay_settings import RelaySettings


@strawberry.input(description="The sub-account's SMTP relay.")
class ConfigureSubAccountEmailProviderInput:
    host: str = strawberry.field(description="Relay host name or IP address.")
    port: int = strawberry.field(description="Relay port (465 implicit TLS, 587 STARTTLS, typically).")
    tls_mode: SmtpTlsMode = strawberry.field(description="How the connection is secured.")
    username: str | None = strawberry.field(default=None, description="SMTP login (omit for a relay without AUTH).")
    password: str | None = strawberry.field(
        default=None, description="SMTP password; write-only, stored encrypted. Omit to keep the stored one."
    )
    from_email: str = strawberry.field(description="Default From address.")
    from_name: str | None = strawberry.field(default=None, description="Default From display name.")
    max_per_minute: int = strawberry.field(default=600, description="Pace of bulk deliveries through the relay.")


@strawberry.type(description="Result of configureSubAccountEmailProvider.")
class ConfigureSubAccountEmailProviderPayload:
    provider: SubAccountEmailProvider | None = strawberry.field(default=None, description="The saved provider.")
    user_errors: list[EmailProviderError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did (nothing was saved)."
    )


@service_errors_as(ConfigureSubAccountEmailProviderPayload, EmailProviderError)
async def configure_sub_account_email_provider(
    info: Info,
    input: Annotated[ConfigureSubAccountEmailProviderInput, strawberry.argument(description="The relay.")],
) -> ConfigureSubAccountEmailProviderPayload:

    viewer = info.context.require_member()
    settings = RelaySettings(host=input.host, port=input.port, tls_mode=domain.SmtpTlsMode(input.tls_mode.value),
                             from_email=input.from_email, from_name=input.from_name, username=input.username,
                             password=input.password, max_per_minute=input.max_per_minute)
    row = await info.context.services.relays.configure_relay(viewer.sub_account_id, settings)
    return ConfigureSubAccountEmailProviderPayload(provider=provider_from_row(row))
