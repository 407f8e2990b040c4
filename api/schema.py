"""The Strawberry schema: root types, limits, caches and error masking.

Limits (DESIGN.md section 3, untrusted input): query depth, token count and alias
count. Parsing and validation results are cached (LRU keyed by the document text),
and the limit rules are built once so the validation cache can hit (it keys on the
rule classes too).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.types import ExecutionContext

from api.errors import INTERNAL_ERROR_MESSAGE, should_mask_error
from api.executor import LeanExecutionContext
from api.mutations import Mutation
from api.queries import Query
from api.response_cache import CachedSharedReads
from api.subscriptions import Subscription
from api.types.account import SubAccount, User
from api.types.bulk_send import BulkSend
from api.types.contact import Contact
from api.types.email_connection import EmailConnection
from api.types.message import Message
from api.types.sync_skip import SyncSkip
from api.types.thread import Thread

MAX_DEPTH = 12
MAX_TOKENS = 2000
MAX_ALIASES = 30
DOCUMENT_CACHE_SIZE = 512

_LIMIT_RULES = [depth_rule(MAX_DEPTH, None), alias_rule(MAX_ALIASES)]

log = logging.getLogger("api.graphql")


class EmailSyncSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Client mistakes (syntax, validation, permission) are not server errors: log
        # only what gets masked, with its traceback, before MaskErrors anonymises it.
        for error in errors:
            if should_mask_error(error):
                log.error("unexpected error in GraphQL execution", exc_info=error.original_error)
            _drop_echoed_input(error)


# graphql-core 3.3: "Variable '$input' has invalid value: <reason>, found: <the whole value>."
_ECHOED_INPUT = re.compile(r"^(Variable '\$\w+' has invalid value: .*?), found: .*$", re.DOTALL)


def _drop_echoed_input(error: GraphQLError) -> None:
    """graphql-core quotes a whole invalid variable in its error message, secrets included
    (an SMTP password next to a missing field): keep the reason, not the value."""
    found = _ECHOED_INPUT.match(error.message)
    if found:
        error.message = f"{found.group(1)}."


def _extensions() -> list[Any]:
    return [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(_LIMIT_RULES),
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        CachedSharedReads,
        lambda: MaskErrors(should_mask_error=should_mask_error, error_message=INTERNAL_ERROR_MESSAGE),
    ]


schema = EmailSyncSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    # Node implementations reachable only through `node(id:)` must still be in the schema.
    types=[Thread, Message, Contact, EmailConnection, SyncSkip, User, SubAccount, BulkSend],
    extensions=_extensions(),
    # Plain leaf fields skip graphql-core's per-field machinery (see api/executor.py).
    execution_context_class=LeanExecutionContext,
)
