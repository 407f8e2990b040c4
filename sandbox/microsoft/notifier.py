"""Delivery of Graph change and lifecycle notifications.

Store events are turned into notification items at once (never blocking the
request that caused the change) and queued per subscription. One worker task
per subscription drains its queue, batching whatever accumulated into one POST
(``value[]``) so order is kept and a burst costs few requests, and retries a
few times with backoff on non-2xx or timeouts, as Graph does (with a much
shorter schedule, to suit tests).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import httpx

from sandbox import ids
from sandbox.context import Sandbox
from sandbox.microsoft.graph_views import etag
from sandbox.microsoft.state import ms_state
from sandbox.microsoft.subscriptions import Subscription
from sandbox.store import Change, MailboxEvent, MessageEvent

LIFECYCLE_EVENTS = {"reauthorizationRequired", "subscriptionRemoved", "missed"}


def change_type_for(sub: Subscription, change: Change) -> str | None:
    """The Graph changeType a store change means for a subscription's resource."""
    if sub.folder is None:
        return {"added": "created", "updated": "updated", "deleted": "deleted"}[change.kind]
    was_in, is_in = change.folder_before == sub.folder, change.folder_after == sub.folder
    if is_in:
        return "updated" if was_in else "created"
    return "deleted" if was_in else None


class Notifier:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.queues: dict[str, asyncio.Queue[tuple[float, dict[str, Any]]]] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=10_000)
        sandbox.store.add_listener(self.on_store_event)

    def reset(self) -> None:
        for task in self.workers.values():
            task.cancel()
        self.workers.clear()
        self.queues.clear()
        self.deliveries.clear()

    def log(self, record: dict[str, Any]) -> None:
        self.deliveries.append(record)

    # -- store events -> notification items ---------------------------------
    def on_store_event(self, event: MessageEvent | MailboxEvent) -> None:
        registry = ms_state(self.sandbox).subscriptions
        if isinstance(event, MailboxEvent):
            if event.kind == "revoked":
                for sub in registry.active_for(event.mailbox.address):
                    self.lifecycle(sub, "subscriptionRemoved")
            return
        for sub in registry.active_for(event.mailbox.address):
            change_type = change_type_for(sub, event.change)
            if change_type is None or change_type not in sub.change_types:
                continue
            message = event.message
            if sub.immutable_ids:
                message_id = event.change.message_id
            elif message is not None:
                message_id = message.rest_id
            else:
                message_id = event.change.rest_id_before or event.change.message_id
            resource = f"Users/{sub.user_id}/Messages/{message_id}"
            resource_data: dict[str, Any] = {"@odata.type": "#Microsoft.Graph.Message", "@odata.id": resource}
            if message is not None:
                resource_data["@odata.etag"] = etag(message)
            resource_data["id"] = message_id
            item: dict[str, Any] = {
                "id": ids.opaque_token("", 9),
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": ids.iso_z_precise(sub.expiration),
                "changeType": change_type,
                "resource": resource,
                "resourceData": resource_data,
            }
            if sub.client_state is not None:
                item["clientState"] = sub.client_state
            item["tenantId"] = sub.tenant_id
            self._enqueue(sub, item)

    def lifecycle(self, sub: Subscription, event: str) -> None:
        """Send a lifecycle notification; subscriptionRemoved also ends the subscription."""
        item: dict[str, Any] = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": ids.iso_z_precise(sub.expiration),
            "tenantId": sub.tenant_id,
            "clientState": sub.client_state,
            "lifecycleEvent": event,
        }
        url = sub.lifecycle_url or sub.notification_url
        if event == "subscriptionRemoved":
            ms_state(self.sandbox).subscriptions.items.pop(sub.id, None)
        queued_at = time.perf_counter()
        self.sandbox.spawn(lambda: self._post(url, {"value": [item]}, "lifecycle", sub.id, [queued_at]))

    # -- queues and workers --------------------------------------------------
    def _enqueue(self, sub: Subscription, item: dict[str, Any]) -> None:
        queued_at = time.perf_counter()

        async def put() -> None:
            queue = self.queues.get(sub.id)
            if queue is None:
                queue = self.queues[sub.id] = asyncio.Queue()
            queue.put_nowait((queued_at, item))
            worker = self.workers.get(sub.id)
            if worker is None or worker.done():
                self.workers[sub.id] = asyncio.get_running_loop().create_task(self._drain(sub.id, queue))

        self.sandbox.spawn(put)

    async def _drain(self, sub_id: str, queue: asyncio.Queue[tuple[float, dict[str, Any]]]) -> None:
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 100:
                batch.append(queue.get_nowait())
            sub = ms_state(self.sandbox).subscriptions.items.get(sub_id)
            if sub is None or not sub.active():
                continue  # deleted or expired meanwhile: Graph stops notifying
            payload = {"value": [item for _, item in batch]}
            await self._post(sub.notification_url, payload, "notification", sub_id, [t for t, _ in batch])

    async def _post(self, url: str, payload: dict[str, Any], kind: str, sub_id: str, queued: list[float]) -> bool:
        config = self.sandbox.config
        client = self.sandbox.http
        if client is None:
            return False
        attempts = 1 + max(0, config.notification_retries)
        for attempt in range(1, attempts + 1):
            started = time.perf_counter()
            record: dict[str, Any] = {
                "kind": kind, "subscriptionId": sub_id, "url": url, "attempt": attempt,
                "time": ids.iso_z_precise(ids.utcnow()), "items": len(payload["value"]),
                "changeTypes": [v.get("changeType") or v.get("lifecycleEvent") for v in payload["value"]],
                "queuedMs": round((started - min(queued)) * 1000, 3) if queued else None,
            }
            try:
                response = await client.post(
                    url, json=payload, headers={"Content-Type": "application/json; charset=utf-8"},
                    timeout=config.notification_timeout,
                )
                ok = 200 <= response.status_code < 300
                self.log({**record, "status": response.status_code, "ok": ok,
                          "durationMs": round((time.perf_counter() - started) * 1000, 3)})
                if ok:
                    return True
            except httpx.HTTPError as exc:
                self.log({**record, "status": None, "ok": False, "error": type(exc).__name__})
            if attempt < attempts:
                await asyncio.sleep(0.05 * 2 ** (attempt - 1))
        return False
