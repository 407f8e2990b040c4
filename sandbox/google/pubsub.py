"""Gmail push notifications through Cloud Pub/Sub push subscriptions.

When a watched mailbox changes (a change-log entry the watch's label filter
lets through), Gmail publishes ``{"emailAddress", "historyId"}`` to the
watch's topic, at most once per second per mailbox: changes inside that
second are coalesced into one notification carrying the latest historyId.
Each push subscription of the topic then receives a POST of the Pub/Sub push
envelope, authenticated by an OIDC token (RS256, signed by the key served at
``/oauth2/v1/certs``; ``iss`` accounts.google.com, ``aud`` the subscription's
audience, ``email`` its service account). A non-2xx answer or a timeout is
retried a few times with a short backoff (Pub/Sub retries for days).

Subscriptions come from ``POST /_sandbox/google/pubsub/subscriptions`` or,
for any topic without one, from the ``gmail_push_endpoint`` setting.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Any

import httpx

from sandbox import ids
from sandbox.context import Sandbox
from sandbox.google.history import current_history_id
from sandbox.google.oauth import ISSUER
from sandbox.google.signing import subject_id
from sandbox.google.state import PushSubscription, google_state
from sandbox.store import Mailbox, MailboxEvent, MessageEvent

ACK_STATUSES = {102, 200, 201, 202, 204}
PUSH_TIMEOUT = 10.0  # Pub/Sub's default acknowledgement deadline
USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


def default_subscription(sandbox: Sandbox, topic: str) -> PushSubscription | None:
    config = google_state(sandbox).config
    if not config.gmail_push_endpoint:
        return None
    project, _, short = topic.removeprefix("projects/").partition("/topics/")
    return PushSubscription(
        name=f"projects/{project}/subscriptions/{short}-sandbox-push",
        topic=topic,
        push_endpoint=config.gmail_push_endpoint,
        audience=config.gmail_push_audience,
        service_account=config.gmail_push_service_account,
    )


def subscriptions_for(sandbox: Sandbox, topic: str) -> list[PushSubscription]:
    explicit = [s for s in google_state(sandbox).subscriptions.values() if s.topic == topic]
    fallback = default_subscription(sandbox, topic)
    return explicit or ([fallback] if fallback else [])


def oidc_token(sandbox: Sandbox, subscription: PushSubscription) -> str:
    now = ids.utcnow()
    account_id = subject_id(subscription.service_account)
    return google_state(sandbox).signing_key.sign({
        "aud": subscription.audience or subscription.push_endpoint,
        "azp": account_id,
        "email": subscription.service_account,
        "email_verified": True,
        "exp": int((now + timedelta(hours=1)).timestamp()),
        "iat": int(now.timestamp()),
        "iss": ISSUER,
        "sub": account_id,
    })


def _publish_time() -> str:
    now = ids.utcnow()
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Pusher:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.last_sent: dict[str, float] = {}
        self.pending: set[str] = set()
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.next_message_id = 2_070_443_601_311_540 + secrets.randbelow(10**12)
        self.generation = 0  # bumped on reset: sleeping pushes of an old world are dropped
        # Changes whose push is not settled yet (scheduled, waiting out the per-mailbox
        # interval, or being delivered with retries): tests wait for 0 instead of sleeping.
        self._outstanding = 0
        self._outstanding_lock = threading.Lock()
        sandbox.store.add_listener(self.on_store_event)

    def reset(self) -> None:
        self.generation += 1
        self.last_sent.clear()
        self.pending.clear()
        self.deliveries.clear()
        with self._outstanding_lock:
            self._outstanding = 0

    @property
    def outstanding(self) -> int:
        with self._outstanding_lock:
            return self._outstanding

    def _settled_one(self, generation: int) -> None:
        with self._outstanding_lock:
            if generation == self.generation and self._outstanding > 0:
                self._outstanding -= 1

    def on_store_event(self, event: MessageEvent | MailboxEvent) -> None:
        watches = google_state(self.sandbox).watches
        mailbox = event.mailbox
        if mailbox.provider != "gmail" or watches is None:
            return
        if isinstance(event, MailboxEvent):
            if event.kind == "revoked":
                watches.remove(mailbox.address)
            return
        watch = watches.get(mailbox.address)
        if watch is None or not watch.active() or not watch.matches(event.change):
            return
        # May run on a test's thread: all bookkeeping happens on the server loop.
        with self._outstanding_lock:
            self._outstanding += 1
            generation = self.generation
        self.sandbox.spawn(lambda: self._schedule(mailbox, generation))

    async def _schedule(self, mailbox: Mailbox, generation: int) -> None:
        try:
            key = mailbox.address.lower()
            if key in self.pending:
                return  # a push is already due; it will carry the latest historyId
            self.pending.add(key)
            interval = google_state(self.sandbox).config.gmail_push_min_interval
            delay = self.last_sent.get(key, float("-inf")) + interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if generation != self.generation:
                return
            self.pending.discard(key)
            self.last_sent[key] = time.monotonic()
            await self.publish(mailbox)
        finally:
            self._settled_one(generation)

    async def publish(self, mailbox: Mailbox) -> None:
        state = google_state(self.sandbox)
        watch = state.watches.get(mailbox.address) if state.watches else None
        if watch is None or not watch.active() or mailbox.revoked:
            return
        history_id = current_history_id(state, mailbox)
        data = {"emailAddress": mailbox.address,
                "historyId": history_id if state.config.gmail_push_history_id_as_number else str(history_id)}
        encoded = base64.b64encode(json.dumps(data).encode()).decode("ascii")
        message_id = str(self.next_message_id)
        self.next_message_id += 1 + secrets.randbelow(1000)
        published = _publish_time()
        deliveries = []
        for subscription in subscriptions_for(self.sandbox, watch.topic):
            envelope = {
                "message": {
                    "attributes": {},
                    "data": encoded,
                    "messageId": message_id,
                    "message_id": message_id,
                    "publishTime": published,
                    "publish_time": published,
                },
                "subscription": subscription.name,
            }
            record = {"mailbox": mailbox.address, "historyId": str(history_id), "messageId": message_id,
                      "subscription": subscription.name, "endpoint": subscription.push_endpoint,
                      "publishTime": published}
            deliveries.append(self._deliver(subscription, envelope, record))
        if not deliveries:
            self.deliveries.append({"mailbox": mailbox.address, "historyId": str(history_id), "messageId": message_id,
                                    "subscription": None, "ok": False, "error": "no push subscription for " + watch.topic})
        await asyncio.gather(*deliveries)

    async def _deliver(self, subscription: PushSubscription, envelope: dict[str, Any], record: dict[str, Any]) -> None:
        client = self.sandbox.http
        if client is None:
            return
        retries = google_state(self.sandbox).config.gmail_push_retries
        generation = self.generation
        for attempt in range(1, retries + 2):
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {oidc_token(self.sandbox, subscription)}",
                "User-Agent": USER_AGENT,
            }
            started = time.perf_counter()
            entry = {**record, "attempt": attempt}
            try:
                response = await client.post(subscription.push_endpoint, content=json.dumps(envelope).encode(),
                                             headers=headers, timeout=PUSH_TIMEOUT)
                ok = response.status_code in ACK_STATUSES
                entry.update(status=response.status_code, ok=ok)
            except httpx.HTTPError as exc:
                ok = False
                entry.update(status=None, ok=False, error=type(exc).__name__)
            entry["durationMs"] = round((time.perf_counter() - started) * 1000, 3)
            if generation != self.generation:
                return
            self.deliveries.append(entry)
            if ok:
                return
            if attempt <= retries:
                await asyncio.sleep(0.1 * 2 ** (attempt - 1))
