"""Graph's per-mailbox limits: 4 concurrent requests and 10,000 per 10 minutes.

Exceeding either answers 429 with ``Retry-After``, the way Outlook's service
protects a mailbox (see graph_error_429_throttled.* in the provider samples).
The concurrency limit is only observable when requests overlap, so the
simulated service time (``graph_latency_ms``) is spent while holding a slot.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str


class Throttle:
    WINDOW_SECONDS = 600.0

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = defaultdict(int)
        self.recent: dict[str, deque[float]] = defaultdict(deque)
        self.rejections = 0

    def reset(self) -> None:
        self.in_flight.clear()
        self.recent.clear()
        self.rejections = 0

    def acquire(self, mailbox: str, max_concurrency: int, rate_limit: int) -> Rejection | None:
        """Take a slot for a request, or say why it is throttled (no slot taken)."""
        key = mailbox.lower()
        now = time.monotonic()
        window = self.recent[key]
        while window and now - window[0] > self.WINDOW_SECONDS:
            window.popleft()
        if self.in_flight[key] >= max_concurrency:
            self.rejections += 1
            return Rejection("ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
        if len(window) >= rate_limit:
            self.rejections += 1
            return Rejection("TooManyRequests", "Application is over its request limit for this mailbox. Please retry again later.")
        window.append(now)
        self.in_flight[key] += 1
        return None

    def release(self, mailbox: str) -> None:
        key = mailbox.lower()
        self.in_flight[key] = max(0, self.in_flight[key] - 1)
