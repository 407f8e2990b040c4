"""The small family of errors a client may see verbatim, and the masking rule.

Anything raised in a resolver that is not a ``GraphQLError`` (a bug, a database
failure...) is masked as "internal error" and logged; expected failures of a
use case are not errors at all but ``userErrors`` in the mutation payload.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

log = logging.getLogger("api.errors")

INTERNAL_ERROR_MESSAGE = "internal error"


class SafeError(GraphQLError):
    """A top-level GraphQL error whose message and ``extensions.code`` are shown as is."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": self.code, **extensions})


class Unauthenticated(SafeError):
    code = "UNAUTHENTICATED"

    def __init__(self, message: str = "authentication required") -> None:
        super().__init__(message)


class Forbidden(SafeError):
    code = "FORBIDDEN"

    def __init__(self, message: str = "not allowed for this caller") -> None:
        super().__init__(message)


class NotFoundError(SafeError):
    code = "NOT_FOUND"


class BadUserInput(SafeError):
    code = "BAD_USER_INPUT"


def should_mask_error(error: GraphQLError) -> bool:
    """Mask errors that came from an exception other than a GraphQLError.

    Parse/validation errors have no original error; permission failures and our
    ``SafeError``s are GraphQLErrors: those are meant for the client."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)
