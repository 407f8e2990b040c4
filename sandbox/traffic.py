"""Request log and injected faults, applied to every provider request.

The middleware sits in front of all simulated provider endpoints (not the
control API): it answers with an injected fault before any handler runs, and
records each request with the mailbox and quota cost that handlers note in
``scope["state"]`` (keys ``sandbox.mailbox``, ``sandbox.quota_units``).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import ids

CONTROL_PREFIX = "/_sandbox"


@dataclass
class Fault:
    id: str
    status: int  # 0: no error response, only the delay
    path: str  # substring of, or regex searched in, "path?query"
    method: str | None = None
    count: int | None = 1  # remaining hits; None = until deleted
    retry_after: str | None = None
    body: Any = None
    delay_ms: int = 0
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path in target:
            return True
        try:
            return re.search(self.path, target) is not None
        except re.error:
            return False


BodyBuilder = Callable[[int], Any]


class FaultRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults: list[Fault] = []
        # (path regex, builder) pairs: providers register the error shape their
        # real service answers with, so an injected 503 looks like theirs.
        self.body_builders: list[tuple[re.Pattern[str], BodyBuilder]] = []
        # Faults kept elsewhere (the SMTP catcher's) are cleared with these.
        self._clear_hooks: list[Callable[[], None]] = []

    def register_body(self, path_pattern: str, builder: BodyBuilder) -> None:
        self.body_builders.append((re.compile(path_pattern), builder))

    def add(self, **spec: Any) -> Fault:
        fault = Fault(id=ids.new_guid(), **spec)
        with self._lock:
            self.faults.append(fault)
        return fault

    def on_clear(self, hook: Callable[[], None]) -> None:
        self._clear_hooks.append(hook)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
        for hook in self._clear_hooks:
            hook()

    def take(self, method: str, target: str) -> Fault | None:
        """The first matching fault, consuming one of its hits."""
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, target):
                    fault.hits += 1
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def default_body(self, path: str, status: int) -> Any:
        for pattern, builder in self.body_builders:
            if pattern.search(path):
                return builder(status)
        return {"error": {"code": str(status), "message": "Injected fault."}}


@dataclass
class LoggedRequest:
    time: str
    method: str
    path: str
    query: str
    status: int
    mailbox: str | None
    durationMs: float
    quotaUnits: int = 0
    fault: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RequestLog:
    def __init__(self, limit: int = 100_000) -> None:
        self.entries: deque[LoggedRequest] = deque(maxlen=limit)

    def add(self, entry: LoggedRequest) -> None:
        self.entries.append(entry)

    def clear(self) -> None:
        self.entries.clear()

    def to_list(self, mailbox: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        rows = list(self.entries)
        if mailbox:
            rows = [r for r in rows if (r.mailbox or "").lower() == mailbox.lower()]
        if path:
            rows = [r for r in rows if path in r.path]
        return [asdict(r) for r in rows]


class TrafficMiddleware:
    def __init__(self, app: ASGIApp, faults: FaultRegistry, log: RequestLog) -> None:
        self.app = app
        self.faults = faults
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + (f"?{query}" if query else "")
        status_holder = {"status": 0}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        fault = self.faults.take(scope["method"], target)
        try:
            if fault and fault.delay_ms:
                await asyncio.sleep(fault.delay_ms / 1000)
            if fault and fault.status:
                await self._answer_fault(fault, scope["path"], send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            self.log.add(
                LoggedRequest(
                    time=ids.iso_z_precise(ids.utcnow()),
                    method=scope["method"],
                    path=scope["path"],
                    query=query,
                    status=status_holder["status"],
                    mailbox=state.get("sandbox.mailbox"),
                    durationMs=round((time.perf_counter() - started) * 1000, 3),
                    quotaUnits=int(state.get("sandbox.quota_units", 0)),
                    fault=fault.id if fault else None,
                )
            )

    async def _answer_fault(self, fault: Fault, path: str, send: Send) -> None:
        body = fault.body if fault.body is not None else self.faults.default_body(path, fault.status)
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        content_type = b"text/plain; charset=utf-8" if isinstance(body, str) else b"application/json"
        headers = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
        if fault.retry_after is not None:
            headers.append((b"retry-after", str(fault.retry_after).encode()))
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
