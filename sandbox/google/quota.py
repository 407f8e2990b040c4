"""Gmail's per-user rate limit: quota units per moving minute.

Every method costs the units Google publishes
(https://developers.google.com/gmail/api/reference/quota); a request that
would take a user past the limit within the window is refused with 429 and a
``Retry-After`` of the time until enough earlier units leave the window.
Refused requests consume nothing. Each request records its cost in the request
log (``quotaUnits``); a batch costs the sum of its parts, which are logged one
by one, so summing the log gives the units consumed.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque

COSTS = {
    "getProfile": 1,
    "stop": 50,
    "watch": 100,
    "history.list": 2,
    "labels.list": 1,
    "labels.get": 1,
    "messages.attachments.get": 5,
    "messages.batchDelete": 50,
    "messages.batchModify": 50,
    "messages.delete": 10,
    "messages.get": 5,
    "messages.list": 5,
    "messages.modify": 5,
    "messages.send": 100,
    "messages.trash": 5,
    "messages.untrash": 5,
    "threads.get": 10,
    "threads.list": 10,
}


class Quota:
    def __init__(self) -> None:
        self.windows: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self.rejections = 0

    def reset(self) -> None:
        self.windows.clear()
        self.rejections = 0

    def _prune(self, key: str, now: float, window: float) -> deque[tuple[float, int]]:
        entries = self.windows[key]
        while entries and now - entries[0][0] >= window:
            entries.popleft()
        return entries

    def used(self, mailbox: str, window: float, now: float | None = None) -> int:
        return sum(units for _, units in self._prune(mailbox.lower(), now or time.monotonic(), window))

    def charge(self, mailbox: str, units: int, limit: int, window: float) -> float | None:
        """Take `units` for the mailbox; None if allowed, else seconds until it would be."""
        key, now = mailbox.lower(), time.monotonic()
        entries = self._prune(key, now, window)
        used = sum(u for _, u in entries)
        if used + units <= limit:
            entries.append((now, units))
            return None
        self.rejections += 1
        # Wait until the oldest entries have left the window and freed enough units.
        freed = 0
        for at, spent in entries:
            freed += spent
            if used - freed + units <= limit:
                return max(at + window - now, 0.001)
        return window  # more than the whole limit: never fits; say "a full window"
