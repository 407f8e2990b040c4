"""The subset of Gmail's search syntax (``q``) that sync clients use.

Supported: ``rfc822msgid:``, ``in:``/``label:`` (inbox, sent, trash, spam,
drafts, unread, starred, important, anywhere, user labels), ``is:`` (unread,
read, starred, important), ``from:``/``to:``/``cc:``/``bcc:``/``subject:``,
``after:``/``before:`` (``YYYY/MM/DD`` or epoch seconds), ``newer_than:``/
``older_than:`` (``Nd``, ``Nm``, ``Ny``, ``Nh``), ``has:attachment``,
``filename:``, quoted phrases and bare words (subject, body, addresses), a
leading ``-`` to negate, and ``OR`` between two terms.

Dates are taken as midnight UTC (Gmail uses the account's time zone; epoch
seconds are exact in both).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sandbox.google.views import internal_date_ms
from sandbox.store import Address, Message

Predicate = Callable[[Message], bool]
_TOKEN = re.compile(r'(-?)(?:(\w+):("[^"]*"|\S+)|"([^"]*)"|(\S+))')
_FOLDER_TERMS = {"inbox": "INBOX", "sent": "SENT", "trash": "TRASH", "spam": "SPAM", "draft": "DRAFT",
                 "drafts": "DRAFT", "unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT"}
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "m": timedelta(days=30), "y": timedelta(days=365)}


@dataclass
class Query:
    predicates: list[Predicate] = field(default_factory=list)
    # in:trash / in:spam / in:anywhere lift the default exclusion of trash and spam
    reaches_trash: bool = False

    def matches(self, message: Message) -> bool:
        return all(p(message) for p in self.predicates)


def _people(people: list[Address]) -> str:
    return " ".join(f"{a.name} {a.address}" for a in people).lower()


def _date_ms(value: str) -> int | None:
    if value.isdigit():
        return int(value) * 1000
    for pattern in ("%Y/%m/%d", "%Y-%m-%d", "%m/%d/%Y"):
        try:
            return int(datetime.strptime(value, pattern).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    return None


def _age_ms(value: str) -> int | None:
    match = re.fullmatch(r"(\d+)([hdmy])", value.lower())
    if not match:
        return None
    cutoff = datetime.now(UTC) - int(match.group(1)) * _UNITS[match.group(2)]
    return int(cutoff.timestamp() * 1000)


def _text(message: Message) -> str:
    parts = [message.subject, message.body_text or "", message.body_html or "",
             _people([message.from_] if message.from_ else []), _people(message.to), _people(message.cc)]
    return " ".join(parts).lower()


def _label(value: str) -> Predicate:
    wanted = _FOLDER_TERMS.get(value.lower(), value)
    if value.lower() in ("anywhere", "all"):
        return lambda m: True
    return lambda m: wanted in m.labels or wanted.lower() in {label.lower() for label in m.labels}


def _term(op: str | None, value: str) -> Predicate | None:
    """The predicate of one term; None for an operator we do not know (ignored)."""
    value = value.strip('"')
    lowered = value.lower()
    if op is None:
        return lambda m: lowered in _text(m)
    op = op.lower()
    if op == "rfc822msgid":
        bare = lowered.strip("<>")
        return lambda m: m.internet_message_id.lower().strip("<>") == bare
    if op in ("in", "label"):
        return _label(value)
    if op == "is":
        if lowered == "read":
            return lambda m: "UNREAD" not in m.labels
        return _label(lowered)
    if op == "from":
        return lambda m: lowered in _people([m.from_] if m.from_ else [])
    if op == "to":
        return lambda m: lowered in _people([*m.to, *m.cc, *m.bcc])
    if op in ("cc", "bcc"):
        return lambda m: lowered in _people(m.cc if op == "cc" else m.bcc)
    if op == "subject":
        return lambda m: lowered in m.subject.lower()
    if op in ("after", "newer", "before", "older"):
        bound = _date_ms(value)
        if bound is None:
            return None
        if op in ("after", "newer"):
            return lambda m: internal_date_ms(m) >= bound
        return lambda m: internal_date_ms(m) < bound
    if op in ("newer_than", "older_than"):
        bound = _age_ms(value)
        if bound is None:
            return None
        return (lambda m: internal_date_ms(m) >= bound) if op == "newer_than" else (lambda m: internal_date_ms(m) < bound)
    if op == "has" and lowered == "attachment":
        return lambda m: bool(m.attachments)
    if op == "filename":
        return lambda m: any(lowered in a.filename.lower() for a in m.attachments)
    return None


def parse_query(q: str) -> Query:
    query = Query()
    pending_or: Predicate | None = None
    tokens = list(_TOKEN.finditer(q or ""))
    index = 0
    while index < len(tokens):
        match = tokens[index]
        index += 1
        negate, op, op_value, phrase, word = match.groups()
        if word == "OR" and query.predicates and not negate:
            pending_or = query.predicates.pop()
            continue
        if op and op.lower() in ("in", "label") and op_value.strip('"').lower() in ("trash", "spam", "anywhere", "all"):
            query.reaches_trash = True
        predicate = _term(op, op_value) if op else _term(None, phrase if phrase is not None else word)
        if predicate is None:
            continue
        if negate:
            predicate = (lambda p: lambda m: not p(m))(predicate)
        if pending_or is not None:
            predicate = (lambda a, b: lambda m: a(m) or b(m))(pending_or, predicate)
            pending_or = None
        query.predicates.append(predicate)
    if pending_or is not None:
        query.predicates.append(pending_or)
    return query
