"""A failed statement's error, as it reaches a log line, names the statement but never its
parameters: those are message bodies, addresses and tokens."""

from __future__ import annotations

import io
import logging
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db.engine import create_engine
from sync_engine.logging_setup import build_handler
from sync_engine.settings import Settings


async def test_a_failed_insert_logs_no_parameter_value(database_url: str) -> None:
    body = f"Dear Ann, the wire goes to account {uuid.uuid4().hex}"
    address = f"ann.{uuid.uuid4().hex[:8]}@client.example"
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TEMPORARY TABLE notes (id INTEGER PRIMARY KEY, sender TEXT, body TEXT)"))
            await conn.execute(text("INSERT INTO notes VALUES (1, 'x', 'y')"))
            with pytest.raises(IntegrityError) as failure:  # the same key twice
                await conn.execute(text("INSERT INTO notes (id, sender, body) VALUES (:id, :sender, :body)"),
                                   {"id": 1, "sender": address, "body": body})
    finally:
        await engine.dispose()

    for log_format in ("text", "json"):
        stream = io.StringIO()
        logger = logging.getLogger(f"test.db_errors.{uuid.uuid4().hex}")
        logger.propagate = False
        logger.addHandler(build_handler(Settings(log_format=log_format), stream))
        try:
            raise failure.value
        except IntegrityError:
            logger.exception("storing a note failed: %s", failure.value)
        out = stream.getvalue()
        assert "INSERT INTO notes" in out and "IntegrityError" in out, out  # the statement still says what failed
        assert body not in out and address not in out, (log_format, out)
