"""Expected failures of mutations, returned in payloads as ``userErrors``.

Saleor-style: one error-code enum per domain. Services raise ``ServiceError(code,
message, field)`` with string codes; ``user_errors`` maps them onto the payload's
enum (an unknown code becomes ``INVALID``, keeping the service's message, and is
logged so the enum can be extended). Mutation resolvers wear ``service_errors_as``,
which turns a ``ServiceError`` into the payload with only ``userErrors`` set.
"""

from __future__ import annotations

import enum
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import strawberry

from api.ids import parse_global_id
from sync_engine.services.errors import NotFound, ServiceError

log = logging.getLogger(__name__)


def _v(name: str, description: str) -> Any:
    return strawberry.enum_value(name, description=description)


_NOT_FOUND = "The object does not exist, or belongs to another sub-account."
_FORBIDDEN = "The caller may not do this."
_INVALID = "The input is not valid (see the message)."


@strawberry.enum(description="Why a contact mutation failed.")
class ContactErrorCode(enum.Enum):
    NOT_FOUND = _v("NOT_FOUND", _NOT_FOUND)
    FORBIDDEN = _v("FORBIDDEN", _FORBIDDEN)
    INVALID = _v("INVALID", _INVALID)
    INVALID_EMAIL = _v("INVALID_EMAIL", "Not a valid email address (line breaks are refused).")
    INVALID_NAME = _v("INVALID_NAME", "Not a valid name (line breaks are refused).")
    DUPLICATE_EMAIL = _v("DUPLICATE_EMAIL", "Another contact of the sub-account has this email (case-insensitively).")


@strawberry.enum(description="Why an account administration mutation failed.")
class AccountErrorCode(enum.Enum):
    NOT_FOUND = _v("NOT_FOUND", _NOT_FOUND)
    FORBIDDEN = _v("FORBIDDEN", _FORBIDDEN)
    INVALID = _v("INVALID", _INVALID)
    INVALID_EMAIL = _v("INVALID_EMAIL", "Not a valid email address.")
    INVALID_NAME = _v("INVALID_NAME", "The name is missing or not valid.")
    INVALID_ROLE = _v("INVALID_ROLE", "The role is not one of the known roles.")
    DUPLICATE_EMAIL = _v("DUPLICATE_EMAIL", "Another user of the sub-account has this email.")


@strawberry.enum(description="Why a mailbox connection mutation failed.")
class EmailConnectionErrorCode(enum.Enum):
    NOT_FOUND = _v("NOT_FOUND", _NOT_FOUND)
    FORBIDDEN = _v("FORBIDDEN", _FORBIDDEN)
    INVALID = _v("INVALID", _INVALID)
    NOT_CONNECTED = _v("NOT_CONNECTED", "The user has no connected mailbox.")
    REAUTH_REQUIRED = _v("REAUTH_REQUIRED", "The provider revoked access: connect the mailbox again.")
    INVALID_REDIRECT_URI = _v(
        "INVALID_REDIRECT_URI", "The redirect URI is not an absolute http(s) URL on an allowed origin "
        "(EMAILSYNC_ALLOWED_ORIGINS or the API's own), or uses credentials, backslashes, spaces or non-ASCII."
    )
    INVALID_LOGIN_HINT = _v("INVALID_LOGIN_HINT", "The login hint is not an email address.")
    PROVIDER_UNAVAILABLE = _v("PROVIDER_UNAVAILABLE", "The provider is not configured on this service.")
    PROVIDER_ERROR = _v("PROVIDER_ERROR", "The provider refused or failed the request.")


@strawberry.enum(description="Why a send failed before anything was queued.")
class SendEmailErrorCode(enum.Enum):
    NOT_FOUND = _v("NOT_FOUND", _NOT_FOUND)
    FORBIDDEN = _v("FORBIDDEN", _FORBIDDEN)
    INVALID = _v("INVALID", _INVALID)
    INVALID_EMAIL = _v("INVALID_EMAIL", "A recipient address is not valid.")
    NO_RECIPIENT = _v("NO_RECIPIENT", "No recipient was given.")
    NOT_A_CONTACT = _v("NOT_A_CONTACT", "A recipient is not a contact of the sub-account.")
    NO_SENDER = _v("NO_SENDER", "No connected mailbox (or sub-account provider) can send this email.")
    REAUTH_REQUIRED = _v(
        "REAUTH_REQUIRED", "The user's mailbox must be connected again before it can send this email."
    )
    TOO_MANY_RECIPIENTS = _v("TOO_MANY_RECIPIENTS", "More recipients than the documented maximum.")
    EMPTY_BODY = _v("EMPTY_BODY", "Neither a text nor an HTML body was given.")
    BODY_TOO_LARGE = _v("BODY_TOO_LARGE", "The text and HTML bodies together exceed the documented maximum.")
    SUBJECT_TOO_LONG = _v("SUBJECT_TOO_LONG", "The subject exceeds the documented maximum.")
    INVALID_HEADER = _v(
        "INVALID_HEADER", "A header value (subject, display name) contains a line break, NUL or another "
        "line-breaking character."
    )
    INVALID_IDEMPOTENCY_KEY = _v("INVALID_IDEMPOTENCY_KEY", "The idempotency key is empty, too long or not printable.")
    IDEMPOTENCY_KEY_REUSED = _v(
        "IDEMPOTENCY_KEY_REUSED", "The idempotency key was used for a different request in the last 24 hours."
    )
    INVALID_ATTACHMENT = _v("INVALID_ATTACHMENT", "An attachment could not be decoded or is badly named.")
    ATTACHMENT_TOO_LARGE = _v("ATTACHMENT_TOO_LARGE", "An attachment is larger than 3 MB.")
    ATTACHMENT_TYPE_NOT_ALLOWED = _v("ATTACHMENT_TYPE_NOT_ALLOWED", "An attachment's type is not allowed.")
    ATTACHMENT_CONTENT_MISMATCH = _v(
        "ATTACHMENT_CONTENT_MISMATCH", "An attachment's content does not match its name (checked by content)."
    )


@strawberry.enum(description="Why configuring the sub-account's email provider failed (nothing was saved).")
class EmailProviderErrorCode(enum.Enum):
    FORBIDDEN = _v("FORBIDDEN", _FORBIDDEN)
    INVALID = _v("INVALID", _INVALID)
    INVALID_HOST = _v("INVALID_HOST", "The host is not a host name or an IP address.")
    INVALID_PORT = _v("INVALID_PORT", "The port is not between 1 and 65535.")
    INVALID_EMAIL = _v("INVALID_EMAIL", "The default From is not a valid email address.")
    INVALID_HEADER = _v("INVALID_HEADER", "The display name contains a line break or NUL.")
    TLS_REQUIRED = _v("TLS_REQUIRED", "Only a relay on this machine (loopback) may be used without TLS.")
    UNREACHABLE = _v("UNREACHABLE", "The connection test could not reach the relay (name, port, firewall).")
    TLS_FAILED = _v("TLS_FAILED", "The TLS handshake failed or the relay does not offer STARTTLS.")
    AUTH_FAILED = _v("AUTH_FAILED", "The relay refused the username and password.")
    REFUSED = _v("REFUSED", "The relay answered the connection test with an error.")


@strawberry.enum(description="Why a thread mutation failed.")
class ThreadErrorCode(enum.Enum):
    NOT_FOUND = _v("NOT_FOUND", _NOT_FOUND)
    FORBIDDEN = _v("FORBIDDEN", _FORBIDDEN)
    INVALID = _v("INVALID", _INVALID)


@strawberry.interface(description="An expected failure of a mutation, tied to an input field when it can be.")
class UserError:
    field: str | None = strawberry.field(description="The input field at fault (camelCase), if any.")
    message: str = strawberry.field(description="What went wrong, for humans.")


@strawberry.type(description="A contact mutation failure.")
class ContactError(UserError):
    code: ContactErrorCode = strawberry.field(description="Machine-readable reason.")


@strawberry.type(description="An account administration mutation failure.")
class AccountError(UserError):
    code: AccountErrorCode = strawberry.field(description="Machine-readable reason.")


@strawberry.type(description="A mailbox connection mutation failure.")
class EmailConnectionError(UserError):
    code: EmailConnectionErrorCode = strawberry.field(description="Machine-readable reason.")


@strawberry.type(description="A send failure.")
class SendEmailError(UserError):
    code: SendEmailErrorCode = strawberry.field(description="Machine-readable reason.")


@strawberry.type(description="A failure to configure the sub-account's email provider.")
class EmailProviderError(UserError):
    code: EmailProviderErrorCode = strawberry.field(description="Machine-readable reason.")


@strawberry.type(description="A thread mutation failure.")
class ThreadError(UserError):
    code: ThreadErrorCode = strawberry.field(description="Machine-readable reason.")


ErrorT = TypeVar("ErrorT")


def user_error(error_type: type[ErrorT], code: str, message: str, field: str | None = None) -> ErrorT:
    code_enum = _CODE_ENUMS[error_type]
    try:
        member = code_enum[code]
    except KeyError:
        log.warning("service error code %s has no %s member; answering INVALID", code, code_enum.__name__)
        member = code_enum["INVALID"]
    return error_type(field=field, message=message, code=member)  # type: ignore[call-arg]


def user_errors(error_type: type[ErrorT], exc: ServiceError) -> list[ErrorT]:
    return [user_error(error_type, exc.code, exc.message, exc.field)]


def input_id(global_id: str, type_name: str, *, what: str, field: str) -> uuid.UUID:
    """The uuid of a global-id input; one that does not decode, or names another type,
    is a ``NOT_FOUND`` user error on ``field`` ("<what> not found")."""
    id_ = parse_global_id(global_id, type_name)
    if id_ is None:
        raise NotFound(what, field)
    return id_


P = ParamSpec("P")
PayloadT = TypeVar("PayloadT")


def service_errors_as(
    payload_type: type[PayloadT], error_type: type[Any]
) -> Callable[[Callable[P, Awaitable[PayloadT]]], Callable[P, Awaitable[PayloadT]]]:
    """Mutation resolver decorator: a ``ServiceError`` raised by the resolver (by the
    service it calls, or by its own input checks) is answered as ``payload_type`` with
    only ``userErrors`` set; every other payload field defaults to null."""

    def decorate(resolver: Callable[P, Awaitable[PayloadT]]) -> Callable[P, Awaitable[PayloadT]]:
        @functools.wraps(resolver)
        async def resolve(*args: P.args, **kwargs: P.kwargs) -> PayloadT:
            try:
                return await resolver(*args, **kwargs)
            except ServiceError as exc:
                return payload_type(user_errors=user_errors(error_type, exc))  # type: ignore[call-arg]

        return resolve

    return decorate


_CODE_ENUMS: dict[type, type[enum.Enum]] = {
    ContactError: ContactErrorCode,
    AccountError: AccountErrorCode,
    EmailConnectionError: EmailConnectionErrorCode,
    SendEmailError: SendEmailErrorCode,
    EmailProviderError: EmailProviderErrorCode,
    ThreadError: ThreadErrorCode,
}
