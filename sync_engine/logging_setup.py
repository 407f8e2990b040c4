"""Process-wide logging for ``serve``, ``worker`` and ``dev``: one stderr handler writing
text lines for people or JSON lines for a log collector (``EMAILSYNC_LOG_FORMAT``).

Every line says which request or job it belongs to: the API's middleware runs each
request inside ``request_context(request_id)`` and the worker each job inside
``job_context(job_id, job_name)``; both are contextvars, so they follow the asyncio task
and its children and never leak to another request.

Secrets never reach the output: the handler's filter rewrites each record's message and
structured ``fields`` (bearer and API-key credentials, JWTs, ``password=``/``token=``-style
values, passwords in URLs) before any formatter sees it, and exception texts get the same
treatment.

No input can forge a line: a message carries text from outside (uvicorn percent-decodes
the request path, so ``%0A`` arrives as a newline), and the text formatter escapes every
control character and line separator in it (``\\n``, ``\\x1b``, ``\\u2028``); JSON escapes
them by itself, and the JSON formatter also escapes the separators JSON leaves raw.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from sync_engine.settings import Settings

_request_id: ContextVar[str | None] = ContextVar("emailsync_request_id", default=None)
_job: ContextVar[tuple[str, str] | None] = ContextVar("emailsync_job", default=None)

REDACTED = "[redacted]"
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Credentials in an Authorization header value, wherever it was printed.
    (re.compile(r"(?i)\b(bearer|apikey|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\1\2{REDACTED}"),
    # JSON Web Tokens (user tokens, Google id_tokens), even without a scheme before them.
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # Partner API keys.
    (re.compile(r"\besk_[A-Za-z0-9_-]+"), f"esk_{REDACTED}"),
    # key=value / "key": "value" pairs whose key names a secret (flow_token=, client_secret:, ...).
    (re.compile(r"(?i)([A-Za-z_-]*(?:password|passwd|secret|token|api[_-]?key|signature|authorization)"
                r"[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}]+)"), rf"\1{REDACTED}"),
    # Passwords inside URLs (database and Redis URLs).
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@"), rf"\1:{REDACTED}@"),
)


# One cheap search first: most lines (the access line on every request) hold none of these.
_MAYBE_SECRET = re.compile(r"(?i)bearer|apikey|basic|eyJ|esk_|passw|secret|token|api[_-]?key|signature|authorization|://[^/\s]*:[^@\s/]*@")


# A structured field whose very name says it holds a secret.
_SECRET_KEY = re.compile(r"(?i)password|passwd|secret|token|api[_-]?key|signature|authorization")


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return _redact_fields(value)
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


def _redact_fields(fields: dict[Any, Any]) -> dict[Any, Any]:
    """A copy of a record's structured fields with secrets scrubbed: values, and whole values
    whose key names a secret (``{"token": "..."}`` has no ``token=`` for ``redact`` to see)."""
    return {key: REDACTED if isinstance(key, str) and _SECRET_KEY.search(key) and value not in (None, "")
            else _redact_value(value) for key, value in fields.items()}

# Characters that end a line for some reader (a terminal, ``str.splitlines``, a log
# collector) or drive a terminal: C0 controls, DEL, C1 controls, U+2028/U+2029.
_CONTROL_ESCAPES = {code: chr(code).encode("unicode_escape").decode("ascii")
                    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}
_HAS_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# JSON escapes C0 controls itself; these it writes raw, and ``str.splitlines`` breaks on them.
_JSON_RAW_SEPARATORS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
_HAS_JSON_RAW_SEPARATOR = re.compile("[\x85\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` on one line: every control character or line separator written as its escape."""
    return text.translate(_CONTROL_ESCAPES) if _HAS_CONTROL.search(text) else text


def current_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Tag every log line written while handling one HTTP request."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


@contextmanager
def job_context(job_id: str | None, job_name: str) -> Iterator[None]:
    """Tag every log line written while running one job (the worker wraps each job in it)."""
    token = _job.set((job_id or "", job_name))
    try:
        yield
    finally:
        _job.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current request id / job onto the record (for both formatters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _request_id.get()
        if request_id is not None:
            record.request_id = request_id
        job = _job.get()
        if job is not None:
            record.job_id, record.job_name = job
        return True


class RedactSecrets(logging.Filter):
    """Rewrites the record itself, so no handler or formatter after it sees a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it, without the arguments
            record.msg, record.args = redact(str(record.msg)), None
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = _redact_fields(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_CONTEXT_FIELDS = ("request_id", "job_id", "job_name")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then context and the
    structured ``fields`` a caller passed (``log.info(..., extra={"fields": {...}})``)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value:
                line[name] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        text = json.dumps(line, ensure_ascii=False, default=str)
        if _HAS_JSON_RAW_SEPARATOR.search(text):
            text = text.translate(_JSON_RAW_SEPARATORS)
        return text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message [context]``, the message and context on that one line
    whatever they hold; a traceback, when there is one, follows on lines of its own."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{self.formatTime(record)} {record.levelname} {record.name} {escape_controls(record.getMessage())}"
        context = " ".join(f"{name}={escape_controls(str(getattr(record, name)))}"
                           for name in _CONTEXT_FIELDS if getattr(record, name, None))
        if context:
            text = f"{text} [{context}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        if record.stack_info:
            text = f"{text}\n{self.formatStack(record.stack_info)}"
        return text


def build_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactSecrets())
    return handler


def configure_logging(settings: Settings) -> None:
    """Make this process log through one handler of ours (replacing any there was)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(build_handler(settings))
    root.setLevel(settings.log_level)
    # Libraries that would otherwise print their own way or too much at INFO.
    logging.getLogger("uvicorn.access").propagate = False  # the API writes its own access line
    logging.captureWarnings(True)
