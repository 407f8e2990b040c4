"""Graph throttling (429 + Retry-After), injected faults and the request log."""

from __future__ import annotations

import asyncio
import time


async def test_more_than_four_concurrent_requests_are_throttled(outlook, control):
    alice = outlook()
    control.patch("/config", json={"graph_latency_ms": 400})
    async with alice.graph() as graph:
        await graph.get("/me")  # warm one connection; the rest open concurrently
        responses = await asyncio.gather(*(graph.get("/me") for _ in range(8)))
    statuses = [r.status_code for r in responses]
    assert 1 <= statuses.count(200) <= 4, statuses
    throttled = [r for r in responses if r.status_code == 429]
    assert throttled, statuses
    for response in throttled:
        assert float(response.headers["Retry-After"]) > 0
        assert response.json()["error"]["code"] == "ApplicationThrottled"
    control.patch("/config", json={"graph_latency_ms": 0})
    async with alice.graph() as graph:  # slots were released
        assert all(r.status_code == 200 for r in await asyncio.gather(*(graph.get("/me") for _ in range(4))))


async def test_rate_limit_per_mailbox(outlook, control):
    alice, bob = outlook(), outlook("bob@contoso.test", "Bob")
    control.patch("/config", json={"graph_rate_limit": 3})
    async with alice.graph() as graph:
        statuses = [(await graph.get("/me")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    async with bob.graph() as graph:
        assert (await graph.get("/me")).status_code == 200  # another mailbox has its own budget


async def test_injected_fault_with_retry_after_then_recovery(outlook, control):
    alice = outlook()
    control.delete("/requests")
    fault = control.post("/faults", json={"status": 503, "retry_after": 7, "count": 2, "path": "/me/messages", "method": "GET"})
    assert fault.status_code == 201
    async with alice.graph() as graph:
        assert (await graph.post("/me/messages", json={"subject": "d"})).status_code == 201  # method does not match
        first, second, third = [await graph.get("/me/messages") for _ in range(3)]
    assert first.status_code == second.status_code == 503
    assert first.headers["Retry-After"] == "7"
    assert first.json()["error"]["code"] == "ServiceUnavailable"
    assert third.status_code == 200
    log = control.get("/requests", params={"path": "/v1.0/me/messages"}).json()
    assert [(r["method"], r["status"], bool(r["fault"])) for r in log] == [
        ("POST", 201, False), ("GET", 503, True), ("GET", 503, True), ("GET", 200, False)]
    assert log[-1]["mailbox"] == alice.address


async def test_regex_fault_429_on_delta_and_identity_fault(sandbox_server, outlook, control):
    alice = outlook()
    control.post("/faults", json={"status": 429, "retry_after": "2.128", "path": r"/messages/delta$", "count": 1})
    control.post("/faults", json={"status": 503, "path": "/oauth2/v2.0/token", "count": 1})
    async with alice.graph() as graph:
        throttled = await graph.get("/me/mailFolders/inbox/messages/delta")
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2.128"
        assert throttled.json()["error"]["code"] == "TooManyRequests"
        assert (await graph.get("/me/mailFolders/inbox/messages/delta")).status_code == 200
    import httpx

    token = httpx.post(f"{sandbox_server.authority}/oauth2/v2.0/token", data={"grant_type": "refresh_token"},
                       verify=sandbox_server.ssl_context())
    assert token.status_code == 503 and token.json()["error"] == "temporarily_unavailable"
    assert control.get("/faults").json() == []


async def test_delay_fault_and_clearing(outlook, control):
    alice = outlook()
    control.post("/faults", json={"status": 0, "delay_ms": 300, "path": "/v1.0/me", "count": None})
    async with alice.graph() as graph:
        started = time.monotonic()
        assert (await graph.get("/me")).status_code == 200
        assert time.monotonic() - started >= 0.3
        assert control.delete("/faults").status_code == 204
        started = time.monotonic()
        assert (await graph.get("/me")).status_code == 200
        assert time.monotonic() - started < 0.3
