"""Gmail quota units and a per-client pacer.

Gmail meters each user at 15,000 quota units per minute (per project, 1.2 M/min);
every method has a cost (https://developers.google.com/gmail/api/reference/quota).
A batch costs the sum of its parts. Importing a message costs
``messages.list`` (5 per page of up to 500 ids, 0.01 per message) plus one
``messages.get`` (5): 5.01 units, inside the 5.2 budget of the design; incremental
sync costs ``history.list`` (2 per page) plus ``messages.get`` for added messages.

``QuotaPacer`` keeps a one-minute sliding ledger of the units this client spends and
waits before a call that would exceed its budget, and honours a shared pause after a
``429`` (every caller of the client waits, not only the one that was refused). It
paces one client; other clients of the same user (a send job during a sync) share the
real quota, which is why 429s are still handled by the HTTP layer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

USER_UNITS_PER_MINUTE = 15_000

# Method -> quota units (Gmail API usage limits page).
COSTS: dict[str, int] = {
    "getProfile": 1,
    "watch": 100,
    "stop": 50,
    "history.list": 2,
    "messages.list": 5,
    "messages.get": 5,
    "messages.modify": 5,
    "messages.send": 100,
    "messages.attachments.get": 5,
    "threads.get": 10,
}

LIST_PAGE_MAX = 500  # messages.list maxResults ceiling
BATCH_MAX = 100  # Gmail batch ceiling; 50 is Google's advice (larger batches get 429s)
BATCH_ADVISED = 50


def full_sync_units(messages: int, *, list_page_size: int = LIST_PAGE_MAX, labels: int = 2) -> int:
    """Units a full sync of ``messages`` spends: a profile read, the list pages of each
    synced label (at least one per label, even when empty) and one get per message."""
    pages = max(labels, -(-messages // list_page_size) + labels - 1)
    return COSTS["getProfile"] + pages * COSTS["messages.list"] + messages * COSTS["messages.get"]


class QuotaPacer:
    """A sliding one-minute budget of quota units (see the module docstring)."""

    def __init__(
        self,
        units_per_minute: int = USER_UNITS_PER_MINUTE,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if units_per_minute <= 0:
            raise ValueError("units_per_minute must be positive")
        self.units_per_minute = units_per_minute
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._ledger: deque[tuple[float, int]] = deque()
        self._in_window = 0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.spent = 0  # every unit ever acquired (metrics, tests)
        self.waited = 0.0  # seconds spent waiting for budget or a pause

    def _expire(self, now: float) -> None:
        while self._ledger and self._ledger[0][0] <= now - self._window:
            _, units = self._ledger.popleft()
            self._in_window -= units

    @property
    def in_window(self) -> int:
        self._expire(self._clock())
        return self._in_window

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (the provider said so)."""
        if seconds > 0:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self, units: int) -> None:
        async with self._lock:
            honoured = 0.0  # the pause already waited out (a later, longer pause is waited too)
            while True:
                now = self._clock()
                self._expire(now)
                if self._paused_until > now and self._paused_until != honoured:
                    honoured = self._paused_until
                    await self._wait(self._paused_until - now)
                    continue
                if self._in_window + units <= self.units_per_minute or not self._ledger:
                    self._ledger.append((now, units))
                    self._in_window += units
                    self.spent += units
                    return
                # Wait until the oldest spend leaves the window.
                await self._wait(self._ledger[0][0] + self._window - now)

    async def _wait(self, seconds: float) -> None:
        seconds = max(seconds, 0.001)
        self.waited += seconds
        await self._sleep(seconds)
