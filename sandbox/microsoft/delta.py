"""Graph delta query for messages in a mail folder.

Round 1 (no token) pages through a snapshot of the folder; its last page
carries a deltaLink anchored at the change-log position of the snapshot. A
later round from a deltaLink replays the change log since the anchor, folder
by folder: messages now in the folder come back whole, messages that left it
come back as ``@removed`` (reason ``deleted`` when gone, ``changed`` when moved).

Tokens are opaque keys into server-side state. Expiring a mailbox's cursors
(control API) makes every older token answer ``410 Gone``/``SyncStateNotFound``,
which is how Graph tells a client to start over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import ids
from sandbox.context import Sandbox
from sandbox.microsoft.graph_common import GraphCall, GraphError, graph_endpoint
from sandbox.microsoft.graph_views import message_json, removed_json
from sandbox.microsoft.state import ms_state
from sandbox.store import Mailbox


@dataclass(frozen=True)
class DeltaItem:
    message_id: str  # immutable id
    kind: str  # "added" | "updated" | "removed"
    removed_rest_id: str | None = None  # the REST id the client knew, for @removed
    reason: str = ""  # @removed reason: "deleted" | "changed"


@dataclass(frozen=True)
class Anchor:
    """What a deltaLink stands for: changes to `folder` after change-log `seq`."""

    mailbox: str
    folder: str
    seq: int
    select: tuple[str, ...] | None


@dataclass(frozen=True)
class Page:
    """What a nextLink stands for: the rest of a round, from `offset`."""

    mailbox: str
    folder: str
    items: tuple[DeltaItem, ...]
    offset: int
    end_seq: int  # where the deltaLink at the end of this round is anchored
    select: tuple[str, ...] | None
    started_seq: int  # for expiry: the seq the round was computed at


class DeltaRegistry:
    def __init__(self) -> None:
        # token -> (state, the mailbox's cursor epoch when the token was issued)
        self.tokens: dict[str, tuple[Anchor | Page, int]] = {}

    def reset(self) -> None:
        self.tokens.clear()

    def put(self, state: Anchor | Page, epoch: int) -> str:
        token = ids.opaque_token("", 40)
        self.tokens[token] = (state, epoch)
        return token


def snapshot(mailbox: Mailbox, folder: str) -> tuple[DeltaItem, ...]:
    messages = sorted(mailbox.in_folder(folder), key=lambda m: m.received or m.created, reverse=True)
    return tuple(DeltaItem(m.id, "added") for m in messages)


def changes(mailbox: Mailbox, folder: str, seq: int) -> tuple[DeltaItem, ...]:
    """Per message touched since `seq`: its net effect on the folder."""
    first_change: dict[str, Any] = {}
    for change in mailbox.changes_since(seq):
        first_change.setdefault(change.message_id, change)
    items = []
    for message_id, first in first_change.items():
        was_in = first.folder_before == folder
        message = mailbox.messages.get(message_id)
        is_in = message is not None and message.folder == folder
        if is_in:
            items.append(DeltaItem(message_id, "updated" if was_in else "added"))
        elif was_in:
            reason = "deleted" if message is None else "changed"
            items.append(DeltaItem(message_id, "removed", first.rest_id_before, reason))
    return tuple(items)


def _gone() -> GraphError:
    return GraphError(410, "SyncStateNotFound", "The sync state generation is not found or has expired. Please start a new sync.")


def _render_item(call: GraphCall, page: Page, item: DeltaItem, select: list[str] | None) -> dict[str, Any] | None:
    mailbox = call.mailbox
    if item.kind == "removed":
        shown = item.message_id if call.immutable_ids else (item.removed_rest_id or item.message_id)
        return removed_json(shown, item.reason)
    message = mailbox.messages.get(item.message_id)
    if message is None or message.folder != page.folder:
        return None  # changed again since the round began: the next round reports it
    body = {"@odata.type": "#microsoft.graph.message", **message_json(message, mailbox, call.message_id(message), select=select)}
    if item.kind == "updated" and call.sandbox.config.delta_string_booleans:
        for key in ("isRead", "isDraft", "hasAttachments"):
            if isinstance(body.get(key), bool):
                body[key] = "true" if body[key] else "false"
    return body


def _link(call: GraphCall, folder_id: str, kind: str, token: str) -> str:
    return f"{call.base}/me/mailfolders('{folder_id}')/messages/delta?${kind}={token}"


def _serve(call: GraphCall, page: Page) -> Response:
    registry = ms_state(call.sandbox).delta
    size = call.page_size(call.sandbox.config.graph_default_page_size)
    select = call.select() or (list(page.select) if page.select else None)
    chunk = page.items[page.offset : page.offset + size]
    values = [v for v in (_render_item(call, page, item, select) for item in chunk) if v is not None]
    folder_id = call.mailbox.folder_ids[page.folder]
    body: dict[str, Any] = {"@odata.context": f"{call.base}/$metadata#Collection(message)"}
    mailbox = call.mailbox
    if mailbox.replay_next_page:
        # Serve this very page again on the next request: clients must dedupe.
        mailbox.replay_next_page = False
        body["@odata.nextLink"] = _link(call, folder_id, "skiptoken", registry.put(page, mailbox.cursor_epoch))
    elif page.offset + size < len(page.items):
        following = Page(**{**page.__dict__, "offset": page.offset + size})
        body["@odata.nextLink"] = _link(call, folder_id, "skiptoken", registry.put(following, mailbox.cursor_epoch))
    else:
        anchor = Anchor(page.mailbox, page.folder, page.end_seq, page.select)
        body["@odata.deltaLink"] = _link(call, folder_id, "deltatoken", registry.put(anchor, mailbox.cursor_epoch))
    body["value"] = values
    return JSONResponse(body)


async def folder_delta(call: GraphCall) -> Response:
    mailbox = call.mailbox
    folder = mailbox.folder_name(call.request.path_params["folder"])
    if folder is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified folder was not found in the store.")
    registry = ms_state(call.sandbox).delta
    params = call.request.query_params
    select = tuple(call.select() or ()) or None
    token = params.get("$deltatoken") or params.get("$skiptoken")
    if token is None:
        page = Page(mailbox.address.lower(), folder, snapshot(mailbox, folder), 0, mailbox.seq, select, mailbox.seq)
        return _serve(call, page)
    if params.get("$deltatoken") == "latest":
        anchor = Anchor(mailbox.address.lower(), folder, mailbox.seq, select)
        return _serve(call, Page(anchor.mailbox, folder, (), 0, mailbox.seq, select, mailbox.seq))
    entry = registry.tokens.get(token)
    if entry is None:
        raise _gone()
    state, epoch = entry
    # Tokens issued before the cursors were expired are gone; a resync started after it is not.
    if state.mailbox != mailbox.address.lower() or state.folder != folder or epoch != mailbox.cursor_epoch:
        raise _gone()
    if isinstance(state, Page):
        return _serve(call, state)
    page = Page(state.mailbox, folder, changes(mailbox, folder, state.seq), 0, mailbox.seq, select or state.select, state.seq)
    return _serve(call, page)


def routes(sandbox: Sandbox) -> list[Route]:
    return [Route("/v1.0/me/mailFolders/{folder}/messages/delta", graph_endpoint(sandbox, folder_delta), methods=["GET"])]
