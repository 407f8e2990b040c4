"""The Strawberry schema: root types, limits, caches and error masking.

Limits (DESIGN.md section 3, untrusted input): token count (checked while parsing),
then query depth, alias count and field count with fragments expanded (measured in
linear time, see api/document_limits.py). Parsing and validation results are cached
by the SHA-256 of the document, bounded by size (api/document_cache.py); the limit
rule is built once so the validation cache can hit (it keys on the rule classes too).
Introspection is refused unless ``EMAILSYNC_INTROSPECTION`` is on (api/introspection.py).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaskErrors, MaxTokensLimiter
from strawberry.types import ExecutionContext

from api.document_cache import DocumentCaches
from api.document_limits import DocumentLimits, document_limits_rule
from api.errors import INTERNAL_ERROR_MESSAGE, should_mask_error
from api.executor import LeanExecutionContext
from api.introspection import IntrospectionSetting
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
# Fields of an operation with its fragments expanded. Written out, a document within
# MAX_TOKENS has fewer than 2,000; this leaves room for fragments reused in a few
# places, and refuses a chain of fragments that each spread the next one twice.
MAX_FIELDS = 5000
DOCUMENT_CACHE_SIZE = 512
DOCUMENT_CACHE_BYTES = 8 * 1024 * 1024
# Our clients' documents are a few kilobytes; a larger one is served, never cached.
MAX_CACHED_DOCUMENT_CHARS = 64 * 1024

_LIMITS = DocumentLimits(max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, max_fields=MAX_FIELDS)
_LIMIT_RULES = [document_limits_rule(_LIMITS)]
document_caches = DocumentCaches(
    max_entries=DOCUMENT_CACHE_SIZE, max_bytes=DOCUMENT_CACHE_BYTES, max_document_chars=MAX_CACHED_DOCUMENT_CHARS
)

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
        IntrospectionSetting,
        document_caches.parser_extension,
        document_caches.validation_extension,
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
