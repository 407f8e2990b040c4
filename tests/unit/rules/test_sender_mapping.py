"""DESIGN.md rule 10, every row: which sender a CRM email uses, and why."""

from __future__ import annotations

import pytest

from sync_engine.rules.sender import (
    EXPLANATIONS,
    EmailKind,
    RouteReason,
    SenderRoute,
    bare_address,
    decide_sender,
)

MAILBOX = "olivia@demo-realty.example"
I, B, W = EmailKind.INDIVIDUAL, EmailKind.BULK, EmailKind.WORKFLOW
M, S = SenderRoute.MAILBOX, SenderRoute.SUB_ACCOUNT
R = RouteReason

# (kind, the user's usable mailbox, the bulk From) -> (route, reason)
ROWS = [
    # individual: the connected mailbox, else the sub-account provider
    (I, MAILBOX, None, M, R.INDIVIDUAL_FROM_MAILBOX),
    (I, MAILBOX, "someone@else.example", M, R.INDIVIDUAL_FROM_MAILBOX),  # a From plays no part
    (I, None, None, S, R.INDIVIDUAL_NO_MAILBOX),
    # bulk: the mailbox only when From is its address, case-insensitively, display names ignored
    (B, MAILBOX, MAILBOX, M, R.BULK_FROM_IS_MAILBOX),
    (B, MAILBOX, "OLIVIA@Demo-Realty.Example", M, R.BULK_FROM_IS_MAILBOX),
    (B, MAILBOX, "Olivia Agent <olivia@demo-realty.example>", M, R.BULK_FROM_IS_MAILBOX),
    (B, MAILBOX, "  olivia@demo-realty.example  ", M, R.BULK_FROM_IS_MAILBOX),
    (B, MAILBOX, None, S, R.BULK_FROM_BLANK),
    (B, MAILBOX, "", S, R.BULK_FROM_BLANK),
    (B, MAILBOX, "   ", S, R.BULK_FROM_BLANK),
    (B, MAILBOX, "team@demo-realty.example", S, R.BULK_FROM_OTHER),
    (B, MAILBOX, "olivia@demo-realty.example.evil", S, R.BULK_FROM_OTHER),
    (B, MAILBOX, "Olivia <olivia@other.example>", S, R.BULK_FROM_OTHER),  # same name, other address
    (B, None, MAILBOX, S, R.BULK_NO_MAILBOX),
    (B, None, None, S, R.BULK_FROM_BLANK),
    # workflow: always the sub-account provider, whatever the mailbox or From
    (W, MAILBOX, None, S, R.WORKFLOW_ALWAYS_SUB_ACCOUNT),
    (W, MAILBOX, MAILBOX, S, R.WORKFLOW_ALWAYS_SUB_ACCOUNT),
    (W, None, None, S, R.WORKFLOW_ALWAYS_SUB_ACCOUNT),
]


@pytest.mark.parametrize(("kind", "mailbox", "from_", "route", "reason"), ROWS)
def test_every_row_of_the_mapping(kind: EmailKind, mailbox: str | None, from_: str | None, route: SenderRoute,
                                  reason: RouteReason) -> None:
    decision = decide_sender(kind, mailbox, from_)
    assert (decision.route, decision.reason) == (route, reason)
    assert decision.synced is (route is SenderRoute.MAILBOX)


def test_every_reason_is_reachable_and_explained() -> None:
    assert {row[4] for row in ROWS} == set(RouteReason)
    assert set(EXPLANATIONS) == set(RouteReason)
    for reason in RouteReason:
        text = EXPLANATIONS[reason]
        synced_route = reason in (R.INDIVIDUAL_FROM_MAILBOX, R.BULK_FROM_IS_MAILBOX)
        says_not_synced = any(words in text for words in ("do not sync", "does not sync", "never sync"))
        assert says_not_synced is not synced_route, reason


@pytest.mark.parametrize(("raw", "bare"), [
    ("Ann <Ann@X.example>", "ann@x.example"), ("ann@x.example", "ann@x.example"), ("", ""), (None, ""),
    ('"Doe, Ann" <ann@x.example>', "ann@x.example"),
])
def test_bare_address(raw: str | None, bare: str) -> None:
    assert bare_address(raw) == bare
