import uuid
from datetime import UTC, datetime

from api.ids import (
    decode_text_cursor,
    decode_time_cursor,
    encode_text_cursor,
    encode_time_cursor,
    from_global_id,
    parse_global_id,
    to_global_id,
)


def test_global_id_round_trip() -> None:
    id_ = uuid.uuid4()
    gid = to_global_id("Thread", id_)
    assert str(id_) not in gid  # opaque
    assert from_global_id(gid) == ("Thread", id_)
    assert parse_global_id(gid, "Thread") == id_
    assert parse_global_id(gid, "Contact") is None


def test_garbage_global_ids() -> None:
    for garbage in ["", "!!!", "VGhyZWFk", to_global_id("Thread", uuid.uuid4())[:-3], "x" * 1000]:
        assert parse_global_id(garbage, "Thread") is None


def test_time_cursor_round_trip() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    id_ = uuid.uuid4()
    assert decode_time_cursor(encode_time_cursor(at, id_)) == (at, id_)
    assert decode_time_cursor("bm9wZQ") is None


def test_text_cursor_round_trip_with_separator_in_key() -> None:
    id_ = uuid.uuid4()
    assert decode_text_cursor(encode_text_cursor("a|b@c.test", id_)) == ("a|b@c.test", id_)
    assert decode_text_cursor("garbage") is None
