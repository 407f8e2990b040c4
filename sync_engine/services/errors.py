"""Expected failures of a use case, shown to clients as ``userErrors``."""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFound(ServiceError):
    """Unknown id, or an id of another sub-account (indistinguishable on purpose)."""

    def __init__(self, what: str, field: str | None = None) -> None:
        super().__init__("NOT_FOUND", f"{what} not found", field)


class Forbidden(ServiceError):
    def __init__(self, message: str = "not allowed for this caller") -> None:
        super().__init__("FORBIDDEN", message)
