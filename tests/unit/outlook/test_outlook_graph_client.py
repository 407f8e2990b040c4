"""GraphClient: Retry-After, throttling, token refresh, limits and error mapping.

Driven through httpx's in-memory transport: the client code under test is the real one.
Its waits go to a recording sleep: the tests assert the delays asked for, not spend them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from sync_engine.domain import (
    AuthRevokedError,
    CursorExpiredError,
    NotFoundError,
    ProviderError,
    ThrottledError,
    TokenSet,
)
from sync_engine.providers.outlook.graph_client import GraphClient, GraphError, parse_retry_after
from tests.support.sleeps import RecordingSleep

BASE = "https://graph.test/v1.0"


def tokens(access="at-1", *, expires_in=3600, refresh="rt-1"):
    return TokenSet(access, refresh, datetime.now(UTC) + timedelta(seconds=expires_in), "Mail.ReadWrite")


def make_client(handler, *, tok=None, refresher=None, on_refreshed=None, sleep=None, **kw):
    return GraphClient(
        BASE,
        tok or tokens(),
        refresher=refresher,
        on_tokens_refreshed=on_refreshed,
        transport=httpx.MockTransport(handler),
        sleep=sleep or RecordingSleep(),
        **kw,
    )


def graph_error(status, code, headers=None):
    return httpx.Response(status, json={"error": {"code": code, "message": "m"}}, headers=headers or {})


# ---- Retry-After parsing


def test_retry_after_published_sample(sample_bytes):
    raw = sample_bytes("graph_error_429_throttled.http").decode()
    header = next(line.split(":", 1)[1] for line in raw.splitlines() if line.lower().startswith("retry-after:"))
    assert parse_retry_after(header) == pytest.approx(2.128)


@pytest.mark.parametrize(
    "value, expected",
    [("2.128", 2.128), ("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("-3", 0.0), ("", None), (None, None), ("soon", None), ("nan", None)],
)
def test_retry_after_numbers(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_http_date():
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0


# ---- throttling


async def test_429_with_fractional_retry_after_is_waited_then_succeeds():
    calls = []
    sleeps = RecordingSleep()

    def handler(request):
        calls.append(list(sleeps.calls))  # what the client had waited before this request
        if len(calls) == 1:
            return graph_error(429, "TooManyRequests", {"Retry-After": "0.3"})
        return httpx.Response(200, json={"ok": True})

    client = make_client(handler, sleep=sleeps)
    assert await client.get_json("/me") == {"ok": True}
    assert calls == [[], [pytest.approx(0.3)]]  # the retry went out after the wait, not before
    await client.aclose()


async def test_503_without_retry_after_backs_off_and_retries():
    statuses = iter([503, 503, 200])
    sleeps = RecordingSleep()

    def handler(request):
        status = next(statuses)
        return httpx.Response(status, json={} if status == 200 else {"error": {"code": "ServiceUnavailable"}})

    client = make_client(handler, sleep=sleeps)
    assert await client.get_json("/me") == {}
    # Exponential backoff with jitter: 0.5 s then 1 s, each within 20 %.
    assert len(sleeps.calls) == 2
    assert 0.4 <= sleeps.calls[0] <= 0.6 and 0.8 <= sleeps.calls[1] <= 1.2
    await client.aclose()


async def test_throttling_budget_spent_raises_throttled_error():
    count = 0
    sleeps = RecordingSleep()

    def handler(request):
        nonlocal count
        count += 1
        return graph_error(429, "TooManyRequests", {"Retry-After": "0.01"})

    client = make_client(handler, max_attempts=3, sleep=sleeps)
    with pytest.raises(ThrottledError) as info:
        await client.get_json("/me")
    assert count == 3
    assert sleeps.calls == [pytest.approx(0.01)] * 2  # between the attempts, not after the last
    assert info.value.retry_after == pytest.approx(0.01)
    await client.aclose()


async def test_long_retry_after_is_not_slept_in_process():
    count = 0
    sleeps = RecordingSleep()

    def handler(request):
        nonlocal count
        count += 1
        return graph_error(429, "TooManyRequests", {"Retry-After": "300"})

    client = make_client(handler, max_wait=30, sleep=sleeps)
    with pytest.raises(ThrottledError) as info:
        await client.get_json("/me")
    assert sleeps.calls == []  # left to the job queue's deferral
    assert count == 1 and info.value.retry_after == 300.0
    await client.aclose()


async def test_at_most_four_requests_in_flight():
    in_flight = peak = 0

    async def handler(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, json={})

    client = make_client(handler)
    await asyncio.gather(*(client.get_json(f"/me/messages/{i}") for i in range(20)))
    assert peak == 4
    await client.aclose()


# ---- headers and links


async def test_immutable_id_prefer_always_sent_and_merged():
    seen = []

    def handler(request):
        seen.append((request.headers.get_list("prefer"), request.headers["authorization"]))
        return httpx.Response(200, json={})

    client = make_client(handler)
    await client.get_json("/me")
    await client.get_json("/me/mailFolders/inbox/messages/delta", prefer=("odata.maxpagesize=200",))
    assert seen[0] == (['IdType="ImmutableId"'], "Bearer at-1")
    assert seen[1][0] == ['IdType="ImmutableId", odata.maxpagesize=200']
    await client.aclose()


async def test_links_outside_the_graph_origin_are_refused():
    def handler(request):  # pragma: no cover - must not be reached
        raise AssertionError("request sent to a foreign host")

    client = make_client(handler)
    with pytest.raises(ProviderError):
        await client.get_json("https://evil.example/v1.0/me/messages/delta?$skiptoken=x")
    await client.aclose()


# ---- tokens


async def test_401_refreshes_once_persists_then_retries():
    order = []

    def handler(request):
        order.append(("request", request.headers["authorization"]))
        if request.headers["authorization"] == "Bearer at-1":
            return graph_error(401, "InvalidAuthenticationToken")
        return httpx.Response(200, json={"id": "me"})

    async def refresher(rt):
        order.append(("refresh", rt))
        return tokens("at-2", refresh="rt-2")

    async def on_refreshed(ts):
        order.append(("persisted", ts.access_token, ts.refresh_token))

    client = make_client(handler, refresher=refresher, on_refreshed=on_refreshed)
    assert await client.get_json("/me") == {"id": "me"}
    assert order == [
        ("request", "Bearer at-1"),
        ("refresh", "rt-1"),
        ("persisted", "at-2", "rt-2"),
        ("request", "Bearer at-2"),
    ]
    assert client.tokens.access_token == "at-2"
    await client.aclose()


async def test_401_after_a_refresh_means_revoked():
    refreshes = 0

    def handler(request):
        return graph_error(401, "InvalidAuthenticationToken")

    async def refresher(rt):
        nonlocal refreshes
        refreshes += 1
        return tokens(f"at-{refreshes + 1}")

    client = make_client(handler, refresher=refresher)
    with pytest.raises(AuthRevokedError):
        await client.get_json("/me")
    assert refreshes == 1
    await client.aclose()


async def test_expiring_token_is_refreshed_before_use_and_refreshes_coalesce():
    refreshes = 0
    used = set()

    def handler(request):
        used.add(request.headers["authorization"])
        return httpx.Response(200, json={})

    async def refresher(rt):
        nonlocal refreshes
        refreshes += 1
        await asyncio.sleep(0.05)
        return tokens("at-fresh")

    client = make_client(handler, tok=tokens("at-old", expires_in=30), refresher=refresher)
    await asyncio.gather(*(client.get_json("/me") for _ in range(8)))
    assert refreshes == 1
    assert used == {"Bearer at-fresh"}
    await client.aclose()


async def test_refresh_failure_propagates_auth_revoked():
    async def refresher(rt):
        raise AuthRevokedError("invalid_grant")

    client = make_client(lambda r: httpx.Response(200, json={}), tok=tokens(expires_in=-10), refresher=refresher)
    with pytest.raises(AuthRevokedError):
        await client.get_json("/me")
    await client.aclose()


async def test_no_refresh_token_is_auth_revoked():
    client = make_client(
        lambda r: graph_error(401, "InvalidAuthenticationToken"),
        tok=tokens(refresh=None),
        refresher=lambda rt: None,
    )
    with pytest.raises(AuthRevokedError):
        await client.get_json("/me")
    await client.aclose()


# ---- error mapping


@pytest.mark.parametrize(
    "status, code, error",
    [
        (404, "ErrorItemNotFound", NotFoundError),
        (410, "SyncStateNotFound", CursorExpiredError),
        (400, "SyncStateNotFound", CursorExpiredError),
        (400, "resyncRequired", CursorExpiredError),
        (400, "syncStateInvalid", CursorExpiredError),
        (400, "ErrorInvalidRecipients", GraphError),
        (403, "ErrorAccessDenied", GraphError),
    ],
)
async def test_error_mapping(status, code, error):
    client = make_client(lambda r: graph_error(status, code))
    with pytest.raises(error):
        await client.get_json("/me/messages/x")
    await client.aclose()


async def test_transport_errors_retry_gets_but_never_replay_posts():
    attempts = {"GET": 0, "POST": 0}

    def handler(request):
        attempts[request.method] += 1
        if request.method == "GET" and attempts["GET"] == 1:
            raise httpx.ReadError("reset", request=request)
        if request.method == "POST":
            raise httpx.ReadError("reset", request=request)
        return httpx.Response(200, json={})

    sleeps = RecordingSleep()
    client = make_client(handler, sleep=sleeps)
    assert await client.get_json("/me") == {}
    with pytest.raises(ProviderError):
        await client.request("POST", "/me/messages/x/send", content=b"")
    assert attempts == {"GET": 2, "POST": 1}
    assert len(sleeps.calls) == 1 and 0.4 <= sleeps.calls[0] <= 0.6  # one backoff, before the GET's retry
    await client.aclose()
