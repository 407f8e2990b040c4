"""Log lines: one JSON object each, tagged with the request or job, and never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid

from sync_engine.logging_setup import build_handler, job_context, request_context
from sync_engine.settings import Settings

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLWJ5dGVz"


def _logger(log_format: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.logging.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(build_handler(Settings(log_format=log_format), stream))
    return logger, stream


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_context() -> None:
    logger, stream = _logger("json")
    logger.info("outside")
    with request_context("req-1"):
        logger.warning("inside %s", "a request")
    with job_context("job-9", "sync_mailbox"):
        logger.error("inside a job")
    outside, in_request, in_job = _lines(stream)
    assert set(outside) == {"time", "level", "logger", "message"}
    assert in_request["request_id"] == "req-1" and in_request["message"] == "inside a request"
    assert in_request["level"] == "WARNING" and in_request["logger"] == logger.name
    assert in_job["job_id"] == "job-9" and in_job["job_name"] == "sync_mailbox" and "request_id" not in in_job


async def test_context_does_not_leak_between_concurrent_tasks() -> None:
    logger, stream = _logger("json")

    async def handle(request_id: str) -> None:
        with request_context(request_id):
            await asyncio.sleep(0)
            logger.info("handling")

    await asyncio.gather(*(handle(f"r{i}") for i in range(20)))
    assert sorted(line["request_id"] for line in _lines(stream)) == sorted(f"r{i}" for i in range(20))


def test_secrets_never_reach_the_output() -> None:
    for log_format in ("json", "text"):
        logger, stream = _logger(log_format)
        logger.info("headers %s", {"Authorization": f"Bearer {JWT}", "X-Api-Key": "esk_live_abcdef123456"})
        logger.info("Authorization: ApiKey esk_0123456789abcdef")
        logger.info("token refresh answered %s", '{"access_token": "ya29.secret-access", "refresh_token": "1//secret-refresh"}')
        logger.info("connecting to postgresql+asyncpg://emailsync:hunter2@db:5432/emailsync")
        logger.info("smtp login password=Sup3rSecret! user=ann")
        logger.info("flow_token=%s&state=abc", "flow-secret-value")
        try:
            raise ValueError(f"bad token {JWT} for redis://:redispass@cache:6379/0")
        except ValueError:
            logger.exception("failed")
        out = stream.getvalue()
        for secret in (JWT, "esk_live_abcdef123456", "esk_0123456789abcdef", "ya29.secret-access", "1//secret-refresh",
                       "hunter2", "Sup3rSecret!", "flow-secret-value", "redispass", "c2lnbmF0dXJlLWJ5dGVz"):
            assert secret not in out, (log_format, secret, out)
        # What is not a secret stays readable.
        assert "db:5432/emailsync" in out and "user=ann" in out and "state=abc" in out and "ValueError" in out


def test_records_are_scrubbed_for_every_handler_after_ours() -> None:
    """The filter rewrites the record itself: a second handler (a test's, an error tracker's)
    sees the scrubbed message, not the original arguments."""
    logger, _ = _logger("json")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger.addHandler(Keep())
    logger.info("Authorization: Bearer %s", JWT)
    assert JWT not in seen[0].getMessage() and seen[0].args is None


FORGED = "2026-12-04 18:00:00,000 ERROR api.auth admin token accepted"


def test_no_message_can_forge_a_line() -> None:
    """Text from outside (a decoded request path) holding line breaks, other controls or
    Unicode line separators stays on its own line, visibly escaped."""
    breaks = ("\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029")
    for log_format in ("text", "json"):
        logger, stream = _logger(log_format)
        for brk in breaks:
            with job_context("job-1", f"name{brk}{FORGED}"):
                logger.info("GET %s 404", f"/x{brk}{FORGED}")
        logger.info("colour \x1b[31mred\x1b[0m and a NUL \x00")
        out = stream.getvalue()
        lines = out.split("\n")[:-1]
        assert out.splitlines() == lines and len(lines) == len(breaks) + 1, (log_format, out)  # every reader agrees
        assert not any(line.startswith("2026-12-04 18:00:00") for line in lines), out
        assert "\x1b" not in out and "\x00" not in out, out
        if log_format == "json":
            decoded = [json.loads(line) for line in lines]
            # The JSON line still carries the exact text, for whoever reads it as JSON.
            assert [d["message"] for d in decoded[:-1]] == [f"GET /x{brk}{FORGED} 404" for brk in breaks]
        else:
            assert "GET /x\\n2026-12-04" in out and "GET /x\\u2028" in out and "\\x1b[31m" in out, out


def test_a_traceback_keeps_its_lines() -> None:
    logger, stream = _logger("text")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed with\nan injected line")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("failed with\\nan injected line") and lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"


def test_structured_fields_are_scrubbed_too() -> None:
    logger, stream = _logger("json")
    logger.info("GET %s", f"/files/{JWT}", extra={"fields": {
        "path": f"/files/{JWT}", "url": "redis://:redispass@cache:6379/0", "client_secret": "plain-secret",
        "nested": {"note": "password=hunter2"}, "status": 200}})
    (line,) = _lines(stream)
    out = stream.getvalue()
    for secret in (JWT, "redispass", "plain-secret", "hunter2"):
        assert secret not in out, (secret, out)
    assert line["path"] == "/files/[redacted]" and line["status"] == 200 and line["client_secret"] == "[redacted]"
    assert line["url"] == "redis://:[redacted]@cache:6379/0"
