"""A stand-in for ``asyncio.sleep`` that the provider clients take as ``sleep=``: it records
every delay they ask for (Retry-After, backoff, quota pauses), so a test asserts the delay
instead of spending it."""

from __future__ import annotations

import asyncio


class RecordingSleep:
    """Records requested delays and returns at once, unless ``real`` is set: then it also
    waits them out (for a peer that keeps real time, like the sandbox's quota window)."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.real = False

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.real:
            await asyncio.sleep(seconds)

    def reset(self) -> None:
        self.calls.clear()
        self.real = False
