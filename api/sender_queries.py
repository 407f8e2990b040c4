"""``senderDomainRules`` and ``resolveSender``: which sender CRM email uses, and why.

Thin: the decision is ``sync_engine.services.sender`` (the same code a send runs), and
this maps it for a settings screen or a "why did it go this way" answer.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import strawberry

from api.context import Info
from api.errors import Forbidden, NotFoundError
from api.types.sending import (
    EmailKind,
    RouteReason,
    SenderDomainRules,
    SenderResolution,
    SenderRoute,
    SenderRule,
    provider_from_row,
)
from api.types.user_errors import input_id
from sync_engine.rules import sender as rules
from sync_engine.services.errors import ServiceError
from sync_engine.services.sender import ResolvedSender


@strawberry.input(description="The email to preview the sender of.")
class ResolveSenderInput:
    kind: EmailKind = strawberry.field(description="Individual, bulk or workflow email.")
    from_: str | None = strawberry.field(
        name="from", default=None, description="The From of a bulk email (display names are ignored)."
    )
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="Whose email (admins and API keys may ask about any user); defaults to the caller."
    )


def _rule(kind: rules.EmailKind, resolved: ResolvedSender) -> SenderRule:
    d = resolved.decision
    return SenderRule(kind=EmailKind(kind.value), route=SenderRoute(d.route.value), reason=RouteReason(d.reason.value),
                      explanation=d.explanation, synced=d.synced, available=resolved.available)


async def sender_domain_rules(info: Info) -> SenderDomainRules:
    viewer = info.context.require_member()
    individual, decided = await info.context.services.senders.sender_rules(viewer.sub_account_id, viewer.user_id)
    return SenderDomainRules(
        provider=provider_from_row(individual.relay) if individual.relay is not None else None,
        mailbox_address=individual.mailbox.address if individual.mailbox is not None else None,
        rules=[_rule(kind, resolved) for kind, resolved in decided],
    )


async def resolve_sender(
    info: Info, input: Annotated[ResolveSenderInput, strawberry.argument(description="The email to preview.")]
) -> SenderResolution:
    viewer = info.context.require_member()
    user_id: uuid.UUID | None = viewer.user_id
    try:
        if input.user_id is not None:
            user_id = input_id(input.user_id, "User", what="user", field="userId")
            if user_id != viewer.user_id and not viewer.is_admin:
                raise Forbidden("only admins may preview another user's sender")
        resolved = await info.context.services.senders.preview_sender(viewer.sub_account_id, user_id,
                                        rules.EmailKind(input.kind.value), input.from_)
    except ServiceError as exc:  # an unknown user is "not found", like any cross-tenant id
        raise NotFoundError(exc.message) from None
    d = resolved.decision
    return SenderResolution(kind=input.kind, route=SenderRoute(d.route.value), reason=RouteReason(d.reason.value),
                            explanation=d.explanation, synced=d.synced, available=resolved.available,
                            from_email=resolved.from_email, from_name=resolved.from_name)
