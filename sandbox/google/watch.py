"""``users.watch`` and ``users.stop``: which mailboxes publish changes to a
Pub/Sub topic. A watch lasts 7 days (apps renew it, Google advises daily);
calling watch again replaces it. ``labelIds`` with ``labelFilterBehavior``
(``include``, the default, or ``exclude``) limits which changes publish.
Revoking consent ends the watch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from sandbox.context import Sandbox
from sandbox.google.gmail_common import GMAIL_PREFIX, GmailCall, gmail_endpoint, gmail_json, invalid
from sandbox.google.history import current_history_id
from sandbox.google.views import now_ms
from sandbox.store import Change

WATCH_LIFETIME_MS = 7 * 24 * 3600 * 1000
_TOPIC = re.compile(r"projects/[^/]+/topics/[^/]+")


@dataclass
class Watch:
    mailbox: str  # lower-cased address
    topic: str
    label_ids: list[str] = field(default_factory=list)
    behavior: str = "include"
    expiration_ms: int = 0
    history_id: int = 0

    def active(self) -> bool:
        return now_ms() < self.expiration_ms

    def matches(self, change: Change) -> bool:
        if not self.label_ids:
            return True
        touched = bool((change.labels_before | change.labels_after) & set(self.label_ids))
        return touched if self.behavior == "include" else not touched

    def to_json(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox, "topicName": self.topic, "labelIds": self.label_ids,
                "labelFilterBehavior": self.behavior, "expiration": str(self.expiration_ms),
                "historyId": str(self.history_id), "active": self.active()}


class WatchRegistry:
    def __init__(self) -> None:
        self.items: dict[str, Watch] = {}

    def reset(self) -> None:
        self.items.clear()

    def get(self, address: str) -> Watch | None:
        return self.items.get(address.lower())

    def put(self, watch: Watch) -> None:
        self.items[watch.mailbox] = watch

    def remove(self, address: str) -> Watch | None:
        return self.items.pop(address.lower(), None)


async def watch(call: GmailCall) -> Response:
    body = await call.json()
    topic = body.get("topicName")
    if not isinstance(topic, str) or not _TOPIC.fullmatch(topic):
        raise invalid("Invalid topicName does not match projects/SOME_PROJECT/topics/*")
    labels = body.get("labelIds") or []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise invalid("Invalid value at 'label_ids'")
    behavior = str(body.get("labelFilterBehavior") or body.get("labelFilterAction") or "include").lower()
    if behavior not in ("include", "exclude"):
        raise invalid(f"Invalid value at 'label_filter_behavior' ({behavior})")
    history_id = current_history_id(call.state, call.mailbox)
    item = Watch(call.mailbox.address.lower(), topic, list(labels), behavior, now_ms() + WATCH_LIFETIME_MS, history_id)
    call.state.watches.put(item)  # type: ignore[union-attr]
    return gmail_json({"historyId": str(history_id), "expiration": str(item.expiration_ms)})


async def stop(call: GmailCall) -> Response:
    call.state.watches.remove(call.mailbox.address)  # type: ignore[union-attr]
    return Response(status_code=204)


def routes(sandbox: Sandbox) -> list[Route]:
    return [
        Route(GMAIL_PREFIX + "/watch", gmail_endpoint(sandbox, "watch", watch), methods=["POST"]),
        Route(GMAIL_PREFIX + "/stop", gmail_endpoint(sandbox, "stop", stop), methods=["POST"]),
    ]
