"""Gmail history: history ids and ``users.history.list``.

A mailbox's change log (store ``seq`` 1, 2, 3, ...) is Gmail's history. History
ids are derived from seqs so they look and behave like Gmail's: large, rising,
and *not contiguous* (Google: "IDs increase chronologically but are not
contiguous with random gaps in between valid IDs"), so an app that does
arithmetic on them breaks here as it would there.

History is retained from a floor; a ``startHistoryId`` below it (or one the
mailbox never issued) answers 404, which tells the client to do a full sync.
Expiring a mailbox's cursors through the control API raises the floor to just
past the current id: every id handed out before is then too old, while the id
a client learns afterwards (getProfile, a new history.list) works.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from sandbox.context import Sandbox
from sandbox.google.gmail_common import (
    GMAIL_PREFIX,
    GmailCall,
    GmailError,
    gmail_endpoint,
    gmail_json,
    invalid,
    not_found,
)
from sandbox.google.state import GoogleState
from sandbox.store import Change, Mailbox

STEP = 8  # history ids per change-log entry; a per-entry jitter in [0, 7) makes the gaps uneven
_EPOCH_MS = 1_577_836_800_000  # 2020-01-01: bases are milliseconds since, so ids rise across restarts
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
MAX_PAGE = 500


def _base(state: GoogleState, mailbox: Mailbox) -> int:
    # Per mailbox incarnation, taken on first use: a restarted sandbox starts above
    # every id it issued before, so an app's stale id is "too old", never reused.
    return state.history_base.setdefault(mailbox.user_id, int(time.time() * 1000) - _EPOCH_MS)


def _jitter(seq: int) -> int:
    return ((seq * 2654435761) >> 7) % 7


def history_id(state: GoogleState, mailbox: Mailbox, seq: int) -> int:
    return _base(state, mailbox) + seq * STEP + _jitter(seq)


def _floor(state: GoogleState, mailbox: Mailbox) -> tuple[int, int]:
    """(lowest valid history id, the seq it stands for)."""
    return state.history_floor.get(mailbox.user_id, (history_id(state, mailbox, 0), 0))


def current_history_id(state: GoogleState, mailbox: Mailbox) -> int:
    return max(history_id(state, mailbox, mailbox.seq), _floor(state, mailbox)[0])


def expire_history(state: GoogleState, mailbox: Mailbox) -> None:
    """Drop all history: ids issued so far become too old for history.list."""
    state.history_floor[mailbox.user_id] = (current_history_id(state, mailbox) + 1, mailbox.seq)


def anchor_seq(state: GoogleState, mailbox: Mailbox, start: int) -> int | None:
    """The change-log position a startHistoryId stands for, or None if not retained."""
    floor_id, floor_seq = _floor(state, mailbox)
    if start < floor_id or start > current_history_id(state, mailbox):
        return None
    seq = (start - _base(state, mailbox)) // STEP
    if seq > 0 and history_id(state, mailbox, seq) > start:
        seq -= 1
    return min(max(seq, floor_seq), mailbox.seq)


def _ref(message_id: str, thread_id: str, labels: frozenset[str] | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": message_id, "threadId": thread_id}
    if labels is not None:
        ref["labelIds"] = sorted(labels)
    return ref


def record_for(state: GoogleState, mailbox: Mailbox, change: Change, types: set[str], label: str | None) -> dict[str, Any] | None:
    """The history record of one change, limited to `types` and `label`; None if nothing is left."""
    if label is not None and label not in change.labels_before | change.labels_after:
        return None
    thread = change.conversation_id
    parts: dict[str, Any] = {}
    if change.kind == "added" and "messageAdded" in types:
        parts["messagesAdded"] = [{"message": _ref(change.message_id, thread, change.labels_after)}]
    elif change.kind == "deleted" and "messageDeleted" in types:
        parts["messagesDeleted"] = [{"message": _ref(change.message_id, thread)}]
    elif change.kind == "updated":
        added = sorted(change.labels_after - change.labels_before)
        removed = sorted(change.labels_before - change.labels_after)
        current = _ref(change.message_id, thread, change.labels_after)
        if added and "labelAdded" in types:
            parts["labelsAdded"] = [{"message": current, "labelIds": added}]
        if removed and "labelRemoved" in types:
            parts["labelsRemoved"] = [{"message": current, "labelIds": removed}]
    if not parts:
        return None
    return {"id": str(history_id(state, mailbox, change.seq)), "messages": [_ref(change.message_id, thread)], **parts}


def _page_token(seq: int) -> str:
    return f"{seq:020d}"


async def list_history(call: GmailCall) -> Response:
    state, mailbox = call.state, call.mailbox
    raw_start = call.param("startHistoryId")
    if raw_start is None:
        raise GmailError(400, "Required parameter: startHistoryId", "required")
    if not raw_start.isdigit():
        raise invalid(f"Invalid value at 'start_history_id' ({raw_start})")
    seq = anchor_seq(state, mailbox, int(raw_start))
    if seq is None:
        raise not_found()
    token = call.param("pageToken")
    if token:
        if not token.isdigit() or int(token) < seq or int(token) > mailbox.seq:
            raise invalid("Invalid pageToken")
        seq = int(token)
        if seq < _floor(state, mailbox)[1]:
            raise not_found()
    requested = call.request.query_params.getlist("historyTypes")
    unknown = [t for t in requested if t not in HISTORY_TYPES]
    if unknown:
        raise invalid(f"Invalid value at 'history_types' ({unknown[0]})")
    types = set(requested or HISTORY_TYPES)
    label = call.param("labelId")
    limit = call.int_param("maxResults", 100, MAX_PAGE)

    records: list[dict[str, Any]] = []
    last_scanned = seq
    for change in mailbox.changes_since(seq):
        if len(records) >= limit:
            break
        last_scanned = change.seq
        record = record_for(state, mailbox, change, types, label)
        if record is not None:
            records.append(record)
    body: dict[str, Any] = {}
    if records:
        body["history"] = records
    if last_scanned < mailbox.seq and len(records) >= limit:
        body["nextPageToken"] = _page_token(last_scanned)
    body["historyId"] = str(current_history_id(state, mailbox))
    return gmail_json(body)


def routes(sandbox: Sandbox) -> list[Route]:
    return [Route(GMAIL_PREFIX + "/history", gmail_endpoint(sandbox, "history.list", list_history), methods=["GET"])]
