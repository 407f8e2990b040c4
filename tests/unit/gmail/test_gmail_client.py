"""GmailClient: Retry-After / backoff, quota throttling, token refresh, error mapping,
batches. Driven through httpx's in-memory transport: the client code is the real one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from sync_engine.domain import AuthRevokedError, NotFoundError, ProviderError, ThrottledError, TokenSet
from sync_engine.providers.gmail import batch
from sync_engine.providers.gmail.gmail_client import (
    GmailError,
    backoff,
    error_info,
    parse_retry_after,
    retry_after_in_message,
)
from sync_engine.providers.gmail.quota import QuotaPacer


def google_error(status, reason, message="m", headers=None):
    return httpx.Response(
        status, json={"error": {"code": status, "message": message, "errors": [{"reason": reason, "domain": "usageLimits"}]}},
        headers=headers or {},
    )


# ---- Retry-After and backoff


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


def test_retry_after_in_gmail_error_message():
    now = datetime(2019, 7, 11, 14, 53, 0, tzinfo=UTC)
    message = "User-rate limit exceeded.  Retry after 2019-07-11T14:53:03.528Z"
    assert retry_after_in_message(message, now=now) == pytest.approx(3.528)
    assert retry_after_in_message("Rate Limit Exceeded", now=now) is None
    assert retry_after_in_message(None) is None


def test_backoff_grows_exponentially_and_is_capped():
    for attempt, nominal in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (12, 32.0)):
        assert nominal * 0.75 <= backoff(attempt) <= nominal * 1.25


def test_error_info_shapes():
    assert error_info({"error": {"code": 403, "message": "x", "errors": [{"reason": "userRateLimitExceeded"}]}}).reason == "userRateLimitExceeded"
    assert error_info({"error": {"code": 429, "message": "x", "status": "RESOURCE_EXHAUSTED"}}).reason == "RESOURCE_EXHAUSTED"
    assert error_info({"error": "invalid_grant", "error_description": "Bad"}).reason == "invalid_grant"
    assert error_info("junk", "text").reason is None


# ---- throttling


async def test_429_retry_after_is_honoured_then_succeeds(make_api, sleeps):
    answers = [google_error(429, "rateLimitExceeded", headers={"Retry-After": "1.5"}), httpx.Response(200, json={"ok": 1})]
    api = make_api(httpx.MockTransport(lambda request: answers.pop(0)))
    assert await api.get_json("profile", cost=1) == {"ok": 1}
    assert sleeps.calls == [pytest.approx(1.5, abs=0.05)]
    assert api.throttled_responses == 1


async def test_403_user_rate_limit_uses_the_time_in_the_message(make_api, sleeps):
    later = (datetime.now(UTC) + timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    answers = [google_error(403, "userRateLimitExceeded", f"User-rate limit exceeded.  Retry after {later}"),
               httpx.Response(200, json={})]
    api = make_api(httpx.MockTransport(lambda request: answers.pop(0)))
    await api.get_json("profile", cost=1)
    assert any(18 < s <= 20 for s in sleeps.calls)


async def test_429_without_retry_after_backs_off_exponentially(make_api, sleeps):
    answers = [google_error(429, "rateLimitExceeded") for _ in range(3)] + [httpx.Response(200, json={})]
    api = make_api(httpx.MockTransport(lambda request: answers.pop(0)))
    await api.get_json("profile", cost=1)
    waits = [s for s in sleeps.calls if s >= 0.5]
    assert len(waits) == 3 and waits[0] < waits[1] < waits[2]


async def test_persistent_throttling_raises_throttled_error(make_api):
    api = make_api(httpx.MockTransport(lambda r: google_error(429, "rateLimitExceeded", headers={"Retry-After": "2"})),
                   max_attempts=3)
    with pytest.raises(ThrottledError) as info:
        await api.get_json("profile", cost=1)
    assert info.value.retry_after == 2.0


async def test_a_wait_longer_than_the_bound_is_left_to_the_job_queue(make_api, sleeps):
    api = make_api(httpx.MockTransport(lambda r: google_error(429, "rateLimitExceeded", headers={"Retry-After": "900"})))
    with pytest.raises(ThrottledError) as info:
        await api.get_json("profile", cost=1)
    assert info.value.retry_after == 900.0 and 900.0 not in sleeps.calls


async def test_403_forbidden_is_not_retried(make_api):
    calls = []

    def handler(request):
        calls.append(request)
        return google_error(403, "forbidden")

    api = make_api(httpx.MockTransport(handler))
    with pytest.raises(GmailError) as info:
        await api.get_json("profile", cost=1)
    assert info.value.status == 403 and len(calls) == 1


async def test_insufficient_scope_means_reconnect(make_api):
    api = make_api(httpx.MockTransport(lambda r: google_error(403, "insufficientPermissions")))
    with pytest.raises(AuthRevokedError):
        await api.get_json("profile", cost=1)


async def test_send_is_not_replayed_after_a_server_error(make_api):
    calls = []

    def handler(request):
        calls.append(request)
        return google_error(503, "backendError")

    api = make_api(httpx.MockTransport(handler))
    with pytest.raises(GmailError):
        await api.post_json("messages/send", {"raw": "x"}, cost=100)
    assert len(calls) == 1


async def test_send_is_replayed_after_a_rate_limit_refusal(make_api):
    answers = [google_error(429, "rateLimitExceeded", headers={"Retry-After": "0"}), httpx.Response(200, json={"id": "s1"})]
    api = make_api(httpx.MockTransport(lambda request: answers.pop(0)))
    assert (await api.post_json("messages/send", {"raw": "x"}, cost=100))["id"] == "s1"


async def test_get_is_retried_after_a_server_error(make_api):
    answers = [google_error(500, "backendError"), httpx.Response(200, json={"ok": True})]
    api = make_api(httpx.MockTransport(lambda request: answers.pop(0)))
    assert (await api.get_json("profile", cost=1))["ok"] is True


async def test_transport_error_mid_send_is_not_retried(make_api):
    calls = []

    def handler(request):
        calls.append(request)
        raise httpx.ReadError("connection reset")

    api = make_api(httpx.MockTransport(handler))
    with pytest.raises(ProviderError):
        await api.post_json("messages/send", {"raw": "x"}, cost=100)
    assert len(calls) == 1


async def test_404_is_not_found(make_api):
    api = make_api(httpx.MockTransport(lambda r: google_error(404, "notFound")))
    with pytest.raises(NotFoundError):
        await api.get_json("messages/x", cost=5)


# ---- quota pacing


async def test_pacer_waits_when_the_minute_budget_is_spent():
    now = [0.0]
    slept = []

    async def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    pacer = QuotaPacer(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(20):
        await pacer.acquire(5)
    assert slept == [] and pacer.in_window == 100
    now[0] = 10.0
    await pacer.acquire(5)  # must wait until the first spend leaves the window
    assert slept == [pytest.approx(50.0)] and pacer.spent == 105


async def test_pacer_pause_holds_every_caller():
    now = [0.0]
    slept = []

    async def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    pacer = QuotaPacer(clock=lambda: now[0], sleep=sleep)
    pacer.pause(3.0)
    await pacer.acquire(1)
    assert slept == [pytest.approx(3.0)]


async def test_units_are_counted_per_call(make_api):
    api = make_api(httpx.MockTransport(lambda r: httpx.Response(200, json={})))
    await api.get_json("history", cost=2)
    await api.get_json("messages/a", cost=5)
    assert api.units_spent == 7


# ---- tokens


def expired_tokens():
    return TokenSet("at-old", "rt-1", datetime.now(UTC) - timedelta(seconds=1), None)


async def test_stale_token_is_refreshed_and_persisted_before_use(make_api):
    seen_auth, persisted = [], []

    def handler(request):
        seen_auth.append(request.headers["authorization"])
        return httpx.Response(200, json={})

    async def refresher(refresh_token):
        assert refresh_token == "rt-1"
        return TokenSet("at-new", "rt-1", datetime.now(UTC) + timedelta(hours=1), None)

    async def on_refreshed(tokens):
        assert seen_auth == []  # stored before anything uses it
        persisted.append(tokens)

    api = make_api(httpx.MockTransport(handler), tokens=expired_tokens(), refresher=refresher, on_refreshed=on_refreshed)
    await api.get_json("profile", cost=1)
    assert seen_auth == ["Bearer at-new"] and persisted[0].access_token == "at-new"


async def test_401_triggers_one_refresh_then_revoked(make_api):
    refreshes = []

    async def refresher(refresh_token):
        refreshes.append(refresh_token)
        return TokenSet(f"at-{len(refreshes) + 1}", "rt-1", None, None)

    api = make_api(httpx.MockTransport(lambda r: httpx.Response(401, json={"error": {"code": 401, "message": "x"}})),
                   refresher=refresher)
    with pytest.raises(AuthRevokedError):
        await api.get_json("profile", cost=1)
    assert len(refreshes) == 1


async def test_refresh_failure_propagates_auth_revoked(make_api):
    async def refresher(refresh_token):
        raise AuthRevokedError("invalid_grant")

    api = make_api(httpx.MockTransport(lambda r: httpx.Response(200, json={})), tokens=expired_tokens(), refresher=refresher)
    with pytest.raises(AuthRevokedError):
        await api.get_json("profile", cost=1)


# ---- batches


def test_batch_codec_round_trip_and_shapes():
    body = batch.encode([batch.InnerRequest("GET", "/gmail/v1/users/me/messages/a?format=full")], "b1").decode()
    assert body.startswith("--b1\r\nContent-Type: application/http\r\n")
    assert "Content-ID: <item-0>" in body and "GET /gmail/v1/users/me/messages/a?format=full\r\n" in body
    assert body.endswith("--b1--\r\n")
    answer = (
        "--xyz\r\nContent-Type: application/http\r\nContent-ID: <response-item-1>\r\n\r\n"
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"error\": {\"code\": 404}}\r\n"
        "--xyz\nContent-Type: application/http\nContent-ID: <response-item-0>\n\n"
        "HTTP/1.1 200 OK\nContent-Type: application/json; charset=UTF-8\n\n{\"id\": \"a\"}\n"
        "--xyz\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        "--xyz--\r\n"
    )
    results = batch.decode(answer, "multipart/mixed; boundary=xyz", 4)
    assert [r.status for r in results] == [200, 404, 204, 500]  # unnamed part in order; missing -> 500
    assert results[0].body == {"id": "a"}
    with pytest.raises(batch.BatchFormatError):
        batch.decode("{}", "application/json", 1)


async def test_get_many_uses_batches_of_50_and_maps_404(make_api, fake_gmail, helpers):
    for i in range(120):
        fake_gmail.add(helpers.full_message(f"m{i:03d}"))
    api = make_api(fake_gmail.transport())
    ids = [f"m{i:03d}" for i in range(120)] + ["gone"]
    items = await api.get_many([f"messages/{i}?format=full" for i in ids], cost_each=5)
    assert fake_gmail.batch_sizes == [50, 50, 21]
    assert [i["id"] for i in items[:120]] == ids[:120] and items[120] is None
    assert api.units_spent == 5 * 121


async def test_get_many_retries_only_throttled_items(make_api, fake_gmail, helpers, sleeps):
    for i in range(5):
        fake_gmail.add(helpers.full_message(f"m{i}"))
    fake_gmail.fault(r"messages/m[13]\?", 429, count=2, in_batch=True, headers={"Retry-After": "4"})
    api = make_api(fake_gmail.transport())
    items = await api.get_many([f"messages/m{i}?format=full" for i in range(5)], cost_each=5)
    assert [i["id"] for i in items] == [f"m{i}" for i in range(5)]
    assert fake_gmail.batch_sizes == [5, 2]  # only the two throttled ones again
    assert sleeps.calls == [pytest.approx(4.0, abs=0.05)] and api.throttled_responses == 2


async def test_get_many_gives_up_with_throttled_error(make_api, fake_gmail, helpers):
    fake_gmail.add(helpers.full_message("a"))
    fake_gmail.add(helpers.full_message("b"))
    fake_gmail.fault(r"messages/b\?", 429, count=100, in_batch=None, headers={"Retry-After": "1"})
    api = make_api(fake_gmail.transport(), max_attempts=3)
    with pytest.raises(ThrottledError):
        await api.get_many(["messages/a?format=full", "messages/b?format=full"], cost_each=5)


async def test_get_many_refreshes_once_when_items_answer_401(make_api, fake_gmail, helpers):
    fake_gmail.add(helpers.full_message("a"))
    fake_gmail.add(helpers.full_message("b"))
    fake_gmail.fault(r"messages/", 401, count=2, in_batch=True, body={"error": {"code": 401, "message": "expired"}})
    refreshed = []

    async def refresher(refresh_token):
        refreshed.append(1)
        return TokenSet("at-2", "rt-1", None, None)

    api = make_api(fake_gmail.transport(), refresher=refresher)
    items = await api.get_many(["messages/a?format=full", "messages/b?format=full"], cost_each=5)
    assert [i["id"] for i in items] == ["a", "b"] and refreshed == [1]


async def test_batch_request_is_well_formed_for_google(make_api):
    seen = {}

    def handler(request):
        seen["url"] = str(request.url)
        seen["type"] = request.headers["content-type"]
        seen["body"] = request.content.decode()
        boundary = "r"
        parts = "".join(
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-item-{i}>\r\n\r\n"
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{json.dumps({'id': str(i)})}\r\n"
            for i in range(2)
        )
        return httpx.Response(200, content=f"{parts}--{boundary}--".encode(),
                              headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})

    api = make_api(httpx.MockTransport(handler))
    items = await api.get_many(["messages/x?format=full", "messages/y?format=full"], cost_each=5)
    assert seen["url"] == "https://gmail.test/batch/gmail/v1"
    assert seen["type"].startswith("multipart/mixed; boundary=")
    assert "GET /gmail/v1/users/me/messages/x?format=full" in seen["body"]
    assert [i["id"] for i in items] == ["0", "1"]
