"""The vocabulary is one set of words for the database, the domain and the GraphQL schema:
stored as their values, loaded back as the same members, exposed under the same names."""

from __future__ import annotations

import enum
import json

import pytest
import sqlalchemy as sa
from graphql import GraphQLEnumType

import vocabulary
from db.base import Base

WORDS = [getattr(vocabulary, name) for name in vocabulary.__all__]

# Every column that stores a vocabulary word (a model column typed otherwise would not be here).
ENUM_COLUMNS = sorted(
    ((table.name, column.name, column) for table in Base.metadata.tables.values() for column in table.columns
     if isinstance(column.type, sa.Enum)),
    key=lambda entry: (entry[0], entry[1]),
)


def test_every_word_is_a_str_enum_whose_text_is_its_value() -> None:
    """``(str, Enum)`` would print ``Provider.OUTLOOK`` in f-strings and logs; the stored
    and serialized text must be the value."""
    assert WORDS and all(issubclass(cls, enum.StrEnum) for cls in WORDS)
    for cls in WORDS:
        for member in cls:
            assert str(member) == f"{member}" == format(member) == member.value
            assert json.dumps(member) == json.dumps(member.value)


def test_the_vocabulary_is_exported_whole() -> None:
    defined = {name for name, value in vars(vocabulary).items()
               if isinstance(value, type) and issubclass(value, enum.Enum)}
    assert defined == set(vocabulary.__all__)


def test_the_columns_that_store_words() -> None:
    stored = {f"{table}.{name}": column.type.enum_class for table, name, column in ENUM_COLUMNS}
    assert stored == {
        "bulk_sends.route": vocabulary.SenderRoute,
        "bulk_sends.route_reason": vocabulary.RouteReason,
        "bulk_sends.status": vocabulary.BulkSendStatus,
        "contacts.source": vocabulary.ContactSource,
        "email_connections.provider": vocabulary.Provider,
        "email_connections.status": vocabulary.ConnectionStatus,
        "events.type": vocabulary.EventType,
        "messages.direction": vocabulary.MessageDirection,
        "messages.kind": vocabulary.EmailKind,
        "messages.origin": vocabulary.MessageOrigin,
        "messages.route": vocabulary.SenderRoute,
        "messages.route_reason": vocabulary.RouteReason,
        "messages.status": vocabulary.MessageStatus,
        "oauth_flows.provider": vocabulary.Provider,
        "outbox.route": vocabulary.SenderRoute,
        "outbox.status": vocabulary.OutboxStatus,
        "sub_account_email_providers.tls_mode": vocabulary.SmtpTlsMode,
        "sync_skips.reason": vocabulary.SkipReason,
        "users.role": vocabulary.Role,
    }


@pytest.mark.parametrize(("table", "name", "column"), ENUM_COLUMNS, ids=[f"{t}.{n}" for t, n, _ in ENUM_COLUMNS])
def test_a_stored_word_round_trips_as_its_value(table: str, name: str, column: sa.Column[enum.StrEnum]) -> None:
    enum_class = column.type.enum_class
    # A plain VARCHAR as the migrations made it, long enough for every value.
    assert column.type.native_enum is False
    assert max(len(member.value) for member in enum_class) <= column.type.length
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        for member in enum_class:
            param = sa.bindparam("word", member, type_=column.type)
            # What reaches the database is the value (not the member's name) ...
            assert conn.execute(sa.select(sa.cast(param, sa.String))).scalar_one() == member.value
            # ... and what comes back is the member itself, also from a plain stored string.
            assert conn.execute(sa.select(param)).scalar_one() is member
            stored = sa.literal_column(f"'{member.value}'")
            assert conn.execute(sa.select(sa.type_coerce(stored, column.type))).scalar_one() is member
        with pytest.raises(sa.exc.StatementError, match="not among the defined enum values"):
            conn.execute(sa.select(sa.bindparam("word", "not_a_word", type_=column.type)))


def test_old_import_locations_name_the_same_classes() -> None:
    import db.models
    import sync_engine.domain
    from db.models import connections, sending, sync_state
    from sync_engine.rules import attachments, sender

    assert db.models.ConnectionStatus is connections.ConnectionStatus is vocabulary.ConnectionStatus
    assert db.models.BulkSendStatus is sending.BulkSendStatus is vocabulary.BulkSendStatus
    assert db.models.OutboxStatus is sync_state.OutboxStatus is vocabulary.OutboxStatus
    for name in ("Provider", "Folder", "ChangeKind", "PushKind", "SmtpTlsMode"):
        assert getattr(sync_engine.domain, name) is getattr(vocabulary, name)
    assert (sender.EmailKind, sender.SenderRoute, sender.RouteReason) == (
        vocabulary.EmailKind, vocabulary.SenderRoute, vocabulary.RouteReason)
    assert attachments.AttachmentProblem is vocabulary.AttachmentProblem


def test_live_connection_states_are_not_a_state() -> None:
    states = vocabulary.ConnectionStatus
    assert "LIVE" not in states.__members__
    assert set(states.LIVE) == {states.ACTIVE, states.SYNCING, states.CONNECTING, states.ERROR}


def test_persisted_verdicts_and_attachment_problems_are_skip_reasons() -> None:
    from sync_engine.rules.selection import Verdict

    reasons = set(vocabulary.SkipReason)
    assert {Verdict.CONFIDENTIAL.value, Verdict.NO_SENDER.value} <= reasons
    assert {problem.value for problem in vocabulary.AttachmentProblem} <= reasons


def test_the_event_log_speaks_the_vocabulary() -> None:
    from sync_engine import events

    logged = {getattr(events.EventType, name) for name in dir(events.EventType) if name.isupper()}
    assert logged == {member.value for member in vocabulary.EventType}


# GraphQL enum name -> the vocabulary class it is.
GRAPHQL_WORDS = {
    "BulkSendStatus": vocabulary.BulkSendStatus,
    "ContactSource": vocabulary.ContactSource,
    "EmailConnectionStatus": vocabulary.ConnectionStatus,
    "EmailKind": vocabulary.EmailKind,
    "EmailProvider": vocabulary.Provider,
    "MessageDirection": vocabulary.MessageDirection,
    "MessageOrigin": vocabulary.MessageOrigin,
    "MessageStatus": vocabulary.MessageStatus,
    "Role": vocabulary.Role,
    "RouteReason": vocabulary.RouteReason,
    "SenderRoute": vocabulary.SenderRoute,
    "SmtpTlsMode": vocabulary.SmtpTlsMode,
}


def _graphql_enum(name: str) -> GraphQLEnumType:
    from api.schema import schema

    found = schema._schema.type_map[name]
    assert isinstance(found, GraphQLEnumType)
    return found


@pytest.mark.parametrize("name", sorted(GRAPHQL_WORDS))
def test_a_graphql_enum_is_its_vocabulary_word(name: str) -> None:
    cls, gql = GRAPHQL_WORDS[name], _graphql_enum(name)
    assert list(gql.values) == [member.name for member in cls]
    assert all(gql.values[member.name].description for member in cls)
    for member in cls:
        assert gql.serialize(member) == member.name
        assert gql.serialize(member.value) == member.name  # a value read by a plain query
        assert gql.parse_value(member.name) is member


def test_inbox_event_types_are_logged_event_types() -> None:
    gql = _graphql_enum("SyncEventType")
    assert {value.value for value in gql.values.values()} <= {member.value for member in vocabulary.EventType}
