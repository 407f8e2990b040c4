"""Graph change and lifecycle notifications -> ``PushNotice``.

Graph posts ``{"value": [notification, ...]}`` to the notification URL; a lifecycle
notification carries ``lifecycleEvent`` (``reauthorizationRequired``,
``subscriptionRemoved``, ``missed``) instead of ``changeType``/``resource``. Graph
does not sign these (rich notifications with encrypted content aside): the
authenticity check is the ``clientState`` comparison the services make against the
stored secret; the ``validationToken`` handshake is answered by the API route.

Notices are reduced to (kind, subscription, clientState) and deduplicated: a batch of
20 "created" notifications for one mailbox is one reason to sync, not 20.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync_engine.domain import PushKind, PushNotice
from sync_engine.providers.base import PushRejected
from sync_engine.providers.provider_support import load_push_json

MAX_BODY_BYTES = 1024 * 1024

LIFECYCLE_KINDS: dict[str, PushKind] = {
    "reauthorizationrequired": PushKind.REAUTHORIZATION_REQUIRED,
    "subscriptionremoved": PushKind.SUBSCRIPTION_REMOVED,
    "missed": PushKind.MISSED,
}


def parse_notifications(body: bytes) -> list[PushNotice]:
    payload = load_push_json(body, max_bytes=MAX_BODY_BYTES, what="notification body")
    if not isinstance(payload, Mapping) or not isinstance(payload.get("value"), list):
        raise PushRejected("notification body has no 'value' array")
    items = payload["value"]
    if not items:
        raise PushRejected("notification body has an empty 'value' array")

    notices: list[PushNotice] = []
    seen: set[tuple[PushKind, str, str | None]] = set()
    for item in items:
        notice = _notice_of(item)
        if notice is None:
            continue
        key = (notice.kind, notice.subscription_id or "", notice.client_state)
        if key not in seen:
            seen.add(key)
            notices.append(notice)
    return notices


def _notice_of(item: Any) -> PushNotice | None:
    if not isinstance(item, Mapping):
        raise PushRejected("notification entry is not an object")
    subscription_id = item.get("subscriptionId")
    if not isinstance(subscription_id, str) or not subscription_id.strip():
        raise PushRejected("notification entry without subscriptionId")
    client_state = item.get("clientState")
    if client_state is not None and not isinstance(client_state, str):
        raise PushRejected("notification clientState is not a string")

    lifecycle = item.get("lifecycleEvent")
    if lifecycle is not None:
        if not isinstance(lifecycle, str):
            raise PushRejected("lifecycleEvent is not a string")
        kind = LIFECYCLE_KINDS.get(lifecycle.strip().lower())
        if kind is None:
            return None  # a lifecycle event this version does not know: nothing to do
        return PushNotice(kind=kind, subscription_id=subscription_id, client_state=client_state)

    change_type = item.get("changeType")
    if not isinstance(change_type, str) or not change_type.strip():
        raise PushRejected("change notification without changeType")
    return PushNotice(kind=PushKind.CHANGED, subscription_id=subscription_id, client_state=client_state)
