"""Gmail's write side short of sending: labels on messages (modify,
batchModify), trash/untrash, delete/batchDelete, and labels.list.

The shared store keeps one folder per message plus its read state; Gmail's
system labels map onto them (INBOX/SENT/DRAFT/TRASH = folder, UNREAD = not
read; no INBOX and none of the others = "archive", i.e. only in All Mail).
Other labels (STARRED, IMPORTANT, CATEGORY_*, SPAM, user ``Label_N``) are kept
as they are. SENT and DRAFT cannot be added or removed, as in Gmail.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from sandbox.context import Sandbox
from sandbox.google.gmail_common import GMAIL_PREFIX, GmailCall, gmail_endpoint, gmail_json, invalid
from sandbox.google.views import labels_only
from sandbox.store import ARCHIVE, FOLDER_LABELS, Mailbox, Message

SYSTEM_LABELS = (
    "INBOX", "SENT", "DRAFT", "TRASH", "SPAM", "UNREAD", "STARRED", "IMPORTANT", "CHAT",
    "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS", "CATEGORY_UPDATES", "CATEGORY_FORUMS",
)
_FIXED = ("SENT", "DRAFT")  # Gmail decides these; clients cannot set or clear them
MAX_BATCH_IDS = 1000


def _check_labels(labels: Any, field_name: str) -> list[str]:
    if labels is None:
        return []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise invalid(f"Invalid value at '{field_name}'")
    for label in labels:
        if label not in SYSTEM_LABELS and not re.fullmatch(r"Label_\d+", label):
            raise invalid(f"Invalid label: {label}")
    return labels


def _folder_for(mailbox: Mailbox, message: Message, target: set[str]) -> str:
    if "TRASH" in target:
        return "deleteditems"
    if message.folder in ("drafts", "sentitems"):
        return message.folder
    own = message.from_ is not None and message.from_.same(mailbox.address)
    if message.folder == "deleteditems" and own and message.sent is not None and "INBOX" not in target:
        return "sentitems"  # untrashing one's own sent mail puts it back among Sent
    if message.folder == "deleteditems":
        return "inbox"  # untrash restores a received message to the inbox
    if "INBOX" in target and "SPAM" not in target:
        return "inbox"
    return ARCHIVE


def apply_labels(call: GmailCall, message: Message, add: list[str], remove: list[str]) -> None:
    for label in _FIXED:
        if (label in add and label not in message.labels) or (label in remove and label in message.labels):
            raise invalid(f"Invalid label: {label}")
    target = (set(message.labels) | set(add)) - set(remove)
    if "SPAM" in add:
        target.discard("INBOX")  # reporting spam takes a message out of the inbox
    folder = _folder_for(call.mailbox, message, target)
    is_read = "UNREAD" not in target
    # The exact label set the store will compute, so an unchanged message records no change.
    labels = {label for label in target if label not in FOLDER_LABELS.values() and label != "UNREAD"}
    if folder in FOLDER_LABELS:
        labels.add(FOLDER_LABELS[folder])
    if not is_read:
        labels.add("UNREAD")
    call.sandbox.store.update_message(call.mailbox, message, folder=folder, is_read=is_read, labels=labels)


async def modify(call: GmailCall) -> Response:
    message = call.message(call.request.path_params["id"])
    body = await call.json()
    add = _check_labels(body.get("addLabelIds"), "add_label_ids")
    remove = _check_labels(body.get("removeLabelIds"), "remove_label_ids")
    apply_labels(call, message, add, remove)
    return gmail_json(labels_only(message))


def _ids(body: dict[str, Any]) -> list[str]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids:
        raise invalid("ids must be specified")
    if len(ids) > MAX_BATCH_IDS:
        raise invalid(f"Too many ids specified. The limit is {MAX_BATCH_IDS}.")
    return [str(i) for i in ids]


async def batch_modify(call: GmailCall) -> Response:
    body = await call.json()
    ids = _ids(body)
    add = _check_labels(body.get("addLabelIds"), "add_label_ids")
    remove = _check_labels(body.get("removeLabelIds"), "remove_label_ids")
    for message_id in ids:
        message = call.mailbox.messages.get(message_id.lower())
        if message is not None:  # ids that no longer exist are skipped
            apply_labels(call, message, add, remove)
    return Response(status_code=204)


async def trash(call: GmailCall) -> Response:
    message = call.message(call.request.path_params["id"])
    apply_labels(call, message, ["TRASH"], [])
    return gmail_json(labels_only(message))


async def untrash(call: GmailCall) -> Response:
    message = call.message(call.request.path_params["id"])
    apply_labels(call, message, [], ["TRASH"])
    return gmail_json(labels_only(message))


async def delete(call: GmailCall) -> Response:
    message = call.message(call.request.path_params["id"])
    call.sandbox.store.delete_message(call.mailbox, message)
    return Response(status_code=204)


async def batch_delete(call: GmailCall) -> Response:
    for message_id in _ids(await call.json()):
        message = call.mailbox.messages.get(message_id.lower())
        if message is not None:
            call.sandbox.store.delete_message(call.mailbox, message)
    return Response(status_code=204)


async def list_labels(call: GmailCall) -> Response:
    user = sorted({label for m in call.mailbox.messages.values() for label in m.labels if label.startswith("Label_")})
    labels = [
        {"id": name, "name": name, "messageListVisibility": "hide" if name in ("SPAM", "TRASH") else "show",
         "labelListVisibility": "labelShow", "type": "system"}
        for name in SYSTEM_LABELS
    ]
    labels += [{"id": name, "name": name, "messageListVisibility": "show", "labelListVisibility": "labelShow",
                "type": "user"} for name in user]
    return gmail_json({"labels": labels})


def routes(sandbox: Sandbox) -> list[Route]:
    def route(path: str, method: str, handler: Any, verb: str = "POST") -> Route:
        return Route(GMAIL_PREFIX + path, gmail_endpoint(sandbox, method, handler), methods=[verb])

    return [
        route("/messages/batchModify", "messages.batchModify", batch_modify),
        route("/messages/batchDelete", "messages.batchDelete", batch_delete),
        route("/messages/{id}/modify", "messages.modify", modify),
        route("/messages/{id}/trash", "messages.trash", trash),
        route("/messages/{id}/untrash", "messages.untrash", untrash),
        route("/messages/{id}", "messages.delete", delete, "DELETE"),
        route("/labels", "labels.list", list_labels, "GET"),
    ]
