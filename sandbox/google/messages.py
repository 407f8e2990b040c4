"""Gmail's read side: getProfile, messages.list/get, attachments.get,
threads.list/get.

``messages.list`` pages newest first; its page token is the (internalDate,
id) of the last message served, so a page boundary survives messages
arriving or leaving between calls. Trash and spam are left out unless asked
for (``includeSpamTrash``, ``in:trash``, ``labelIds=TRASH``), as in Gmail.
"""

from __future__ import annotations

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
from sandbox.google.history import current_history_id, history_id
from sandbox.google.query import parse_query
from sandbox.google.views import (
    FORMATS,
    b64url,
    find_part,
    internal_date_ms,
    message_ref,
    message_resource,
    parse_tree,
    part_of_attachment,
    snippet,
    thread_resource,
)
from sandbox.store import Message

MAX_PAGE = 500


async def get_profile(call: GmailCall) -> Response:
    mailbox = call.mailbox
    threads = {m.conversation_id for m in mailbox.messages.values()}
    return gmail_json({
        "emailAddress": mailbox.address,
        "messagesTotal": len(mailbox.messages),
        "threadsTotal": len(threads),
        "historyId": str(current_history_id(call.state, mailbox)),
    })


def _repeated(call: GmailCall, name: str) -> list[str]:
    """A repeated query parameter; comma-joined values are split too."""
    values: list[str] = []
    for raw in call.request.query_params.getlist(name):
        values += [v.strip() for v in raw.split(",") if v.strip()]
    return values


def _sort_key(message: Message) -> tuple[int, str]:
    return internal_date_ms(message), message.id


def _page_token(key: tuple[int, str]) -> str:
    return f"{key[0]:013d}{int(key[1], 16):020d}"


def _after_token(token: str) -> tuple[int, str]:
    if not token.isdigit() or len(token) != 33:
        raise invalid("Invalid pageToken")
    return int(token[:13]), f"{int(token[13:]):016x}"


def matching(call: GmailCall) -> list[Message]:
    """Messages matching q/labelIds/includeSpamTrash, newest first."""
    q = call.param("q") or ""
    if q and call.metadata_only:
        raise GmailError(403, "Metadata scope does not support 'q' parameter", "forbidden")
    labels = _repeated(call, "labelIds")
    query = parse_query(q)
    include_hidden = (
        call.param("includeSpamTrash", "false").lower() == "true" or query.reaches_trash
        or bool({"TRASH", "SPAM"} & set(labels))
    )
    found = [
        m for m in call.mailbox.messages.values()
        if (include_hidden or not ({"TRASH", "SPAM"} & m.labels))
        and all(label in m.labels for label in labels)
        and query.matches(m)
    ]
    found.sort(key=_sort_key, reverse=True)
    return found


def _page(call: GmailCall, items: list[Message]) -> tuple[list[Message], str | None]:
    limit = call.int_param("maxResults", 100, MAX_PAGE)
    token = call.param("pageToken")
    if token:
        cursor = _after_token(token)
        items = [m for m in items if _sort_key(m) < cursor]
    page = items[:limit]
    following = _page_token(_sort_key(page[-1])) if len(items) > limit else None
    return page, following


async def list_messages(call: GmailCall) -> Response:
    found = matching(call)
    page, following = _page(call, found)
    body: dict[str, Any] = {}
    if page:
        body["messages"] = [message_ref(m) for m in page]
    if following:
        body["nextPageToken"] = following
    body["resultSizeEstimate"] = len(found)
    return gmail_json(body)


def _format(call: GmailCall, allowed: tuple[str, ...] = FORMATS) -> str:
    fmt = (call.param("format") or "full").lower()
    if fmt not in allowed:
        raise invalid(f"Invalid value at 'format' ({call.param('format')})")
    if call.metadata_only and fmt in ("full", "raw"):
        raise GmailError(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
    return fmt


async def get_message(call: GmailCall) -> Response:
    message = call.message(call.request.path_params["id"])
    fmt = _format(call)
    return gmail_json(message_resource(call.state, call.mailbox, message, fmt, _repeated(call, "metadataHeaders")))


async def get_attachment(call: GmailCall) -> Response:
    if call.metadata_only:
        raise GmailError(403, "Metadata scope doesn't allow attachments", "forbidden")
    message = call.message(call.request.path_params["message_id"])
    part_id = part_of_attachment(call.state, message.id, call.request.path_params["id"])
    part = find_part(parse_tree(message.mime), part_id) if part_id is not None else None
    if part is None or part.container:
        raise invalid("Invalid attachment token")
    return gmail_json({"size": len(part.data), "data": b64url(part.data)})


def _thread_messages(call: GmailCall, thread_id: str) -> list[Message]:
    messages = [m for m in call.mailbox.messages.values() if m.conversation_id == thread_id.lower()]
    if not messages:
        raise not_found()
    return messages


async def get_thread(call: GmailCall) -> Response:
    thread_id = call.request.path_params["id"]
    if not all(c in "0123456789abcdefABCDEF" for c in thread_id):
        raise invalid("Invalid id value")
    fmt = _format(call, ("full", "metadata", "minimal"))
    messages = _thread_messages(call, thread_id)
    return gmail_json(thread_resource(call.state, call.mailbox, messages, fmt, _repeated(call, "metadataHeaders")))


async def list_threads(call: GmailCall) -> Response:
    found = matching(call)
    seen: set[str] = set()
    latest: list[Message] = []  # each thread once, at its newest matching message
    for message in found:
        if message.conversation_id not in seen:
            seen.add(message.conversation_id)
            latest.append(message)
    page, following = _page(call, latest)
    last_seq: dict[str, int] = {}
    for message in call.mailbox.messages.values():
        last_seq[message.conversation_id] = max(last_seq.get(message.conversation_id, 0), message.history_seq)
    body: dict[str, Any] = {}
    if page:
        body["threads"] = [
            {"id": m.conversation_id, "snippet": snippet(m),
             "historyId": str(history_id(call.state, call.mailbox, last_seq[m.conversation_id]))}
            for m in page
        ]
    if following:
        body["nextPageToken"] = following
    body["resultSizeEstimate"] = len(latest)
    return gmail_json(body)


def routes(sandbox: Sandbox) -> list[Route]:
    def route(path: str, method: str, handler: Any, verb: str = "GET") -> Route:
        return Route(GMAIL_PREFIX + path, gmail_endpoint(sandbox, method, handler), methods=[verb])

    return [
        route("/profile", "getProfile", get_profile),
        route("/messages", "messages.list", list_messages),
        route("/messages/{message_id}/attachments/{id}", "messages.attachments.get", get_attachment),
        route("/messages/{id}", "messages.get", get_message),
        route("/threads", "threads.list", list_threads),
        route("/threads/{id}", "threads.get", get_thread),
    ]
