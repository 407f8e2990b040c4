"""Gmail's per-user quota (units per method, 429 + Retry-After, recorded in
the request log) and the batch endpoint (multipart/mixed of application/http)."""

from __future__ import annotations

import email
import json
import time

import pytest


def _units(control, path_part: str) -> list[int]:
    return [r["quotaUnits"] for r in control.get("/requests", params={"path": path_part}).json()]


def test_quota_units_are_logged_per_method(gmail, deliver, control):
    sam = gmail()
    mid = deliver(sam.address)["id"]
    control.delete("/requests")
    sam.profile()
    sam.get("/messages")
    sam.message(mid)
    sam.get("/history", params={"startHistoryId": sam.profile()["historyId"]})
    sam.post(f"/messages/{mid}/modify", json={"removeLabelIds": ["UNREAD"]})
    sam.post("/messages/send", json={"raw": "VG86IGNAZXhhbXBsZS5jb20NClN1YmplY3Q6IHgNCg0KaGk="})
    sam.post("/watch", json={"topicName": "projects/p/topics/t"})
    sam.post("/stop", status=204)
    rows = control.get("/requests", params={"mailbox": sam.address}).json()
    assert [(r["method"], r["path"].removeprefix("/gmail/v1/users/me"), r["quotaUnits"]) for r in rows] == [
        ("GET", "/profile", 1), ("GET", "/messages", 5), ("GET", f"/messages/{mid}", 5), ("GET", "/profile", 1),
        ("GET", "/history", 2), ("POST", f"/messages/{mid}/modify", 5), ("POST", "/messages/send", 100),
        ("POST", "/watch", 100), ("POST", "/stop", 50),
    ]
    assert control.get(f"/google/quota/{sam.address}").json()["used"] == 269


def test_rate_limit_429_with_retry_after(gmail, deliver, control):
    config = control.patch("/config", json={"gmail_quota_per_minute": 200})
    assert config.status_code == 200 and config.json()["gmail_quota_per_minute"] == 200
    assert control.patch("/config", json={"gmail_no_such_knob": 1}).status_code == 400
    sam = gmail()
    mid = deliver(sam.address)["id"]
    accepted = 0
    for _ in range(60):
        response = sam.client.get(f"/messages/{mid}", params={"format": "minimal"})
        if response.status_code == 429:
            break
        assert response.status_code == 200
        accepted += 1
    assert accepted == 40  # 40 x 5 units = 200
    body = response.json()["error"]
    assert body["code"] == 429 and body["status"] == "RESOURCE_EXHAUSTED"
    assert body["message"].startswith("User-rate limit exceeded.  Retry after ")
    assert body["errors"][0]["reason"] == "rateLimitExceeded" and body["errors"][0]["domain"] == "usageLimits"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    logged = control.get("/requests", params={"path": f"/messages/{mid}"}).json()
    assert sum(r["quotaUnits"] for r in logged) == 200 and logged[-1]["status"] == 429 and logged[-1]["quotaUnits"] == 0
    # Other users have their own quota.
    other = gmail("other@gmail.test")
    assert other.client.get("/profile").status_code == 200


def test_quota_window_moves(gmail, control):
    control.patch("/config", json={"gmail_quota_per_minute": 3, "gmail_quota_window_seconds": 1})
    sam = gmail()
    assert [sam.client.get("/profile").status_code for _ in range(4)] == [200, 200, 200, 429]
    retry_after = sam.client.get("/profile").headers["retry-after"]
    assert retry_after == "1"
    time.sleep(1.05)
    assert sam.client.get("/profile").status_code == 200


def _batch_body(boundary: str, items: list[tuple[str, str, str, dict | None]], newline: str = "\r\n") -> bytes:
    lines = []
    for content_id, method, target, body in items:
        lines += [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary",
                  "MIME-Version: 1.0", f"Content-ID: <{content_id}>", "",
                  f"{method} {target} HTTP/1.1", "Content-Type: application/json", "accept: application/json",
                  "Host: gmail.googleapis.com", ""]
        lines.append(json.dumps(body) if body is not None else "")
    lines.append(f"--{boundary}--")
    return newline.join(lines).encode()


def _parse_batch(response) -> list[tuple[str, int, dict | None]]:
    envelope = email.message_from_bytes(f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode() + response.content)
    results = []
    for part in envelope.get_payload():
        assert part.get_content_type() == "application/http"
        http_text = part.get_payload(decode=True).replace(b"\r\n", b"\n")
        head, _, body = http_text.partition(b"\n\n")
        status = int(head.split(b"\n")[0].split()[1])
        results.append((part["Content-ID"], status, json.loads(body) if body.strip() else None))
    return results


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_batch_round_trip(gmail, deliver, control, sandbox_server, newline):
    sam = gmail()
    first, second = deliver(sam.address, subject="one")["id"], deliver(sam.address, subject="two")["id"]
    control.delete("/requests")
    body = _batch_body("===============7330845974216740156==", [
        ("b29c5de2+1", "GET", f"/gmail/v1/users/me/messages/{first}?format=metadata&alt=json", None),
        ("b29c5de2+2", "GET", f"https://gmail.googleapis.com/gmail/v1/users/me/messages/{second}?alt=json", None),
        ("b29c5de2+3", "POST", f"/gmail/v1/users/me/messages/{first}/modify?alt=json", {"removeLabelIds": ["UNREAD"]}),
        ("b29c5de2+4", "GET", "/gmail/v1/users/me/messages/0123456789abcdef?alt=json", None),
    ], newline)
    response = sam.client.post(f"{sandbox_server.base_url}/batch/gmail/v1", content=body, headers={
        "Content-Type": 'multipart/mixed; boundary="===============7330845974216740156=="'})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/mixed; boundary=batch_")
    results = _parse_batch(response)
    assert [(cid, status) for cid, status, _ in results] == [
        ("<response-b29c5de2+1>", 200), ("<response-b29c5de2+2>", 200), ("<response-b29c5de2+3>", 200),
        ("<response-b29c5de2+4>", 404)]
    for _, _status, payload in results[:3]:
        sam.discovery.validate(payload, "Message")
    assert results[0][2]["payload"]["headers"] and "parts" not in results[0][2]["payload"]
    assert results[1][2]["payload"]["mimeType"] == "text/plain" and results[1][2]["payload"]["body"]["data"]
    assert results[2][2]["labelIds"] == ["INBOX"]
    assert results[3][2]["error"]["status"] == "NOT_FOUND"
    # Each inner call is charged and logged; the batch envelope itself costs nothing.
    rows = control.get("/requests").json()
    assert [(r["path"].rsplit("/", 1)[-1], r["quotaUnits"]) for r in rows] == [
        (first, 5), (second, 5), ("modify", 5), ("0123456789abcdef", 5), ("v1", 0)]


def test_batch_limits_and_quota_inside(gmail, deliver, control, sandbox_server):
    sam = gmail()
    mid = deliver(sam.address)["id"]
    url = f"{sandbox_server.base_url}/batch/gmail/v1"
    items = [(str(i), "GET", f"/gmail/v1/users/me/messages/{mid}?format=minimal", None) for i in range(101)]
    too_many = sam.client.post(url, content=_batch_body("b", items), headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == 400

    control.patch("/config", json={"gmail_quota_per_minute": 20})
    response = sam.client.post(url, content=_batch_body("b", items[:6]), headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert [status for _, status, _ in _parse_batch(response)] == [200, 200, 200, 200, 429, 429]
    unauthenticated = sam.client.post(url, content=_batch_body("b", items[:1]), headers={
        "Content-Type": "multipart/mixed; boundary=b", "Authorization": "Bearer nope"})
    assert [status for _, status, _ in _parse_batch(unauthenticated)] == [401]


def test_injected_faults_and_config_reset(gmail, control):
    sam = gmail()
    control.post("/faults", json={"status": 503, "path": "/gmail/v1/users/me/messages", "retry_after": 2})
    fault = sam.client.get("/messages")
    assert fault.status_code == 503 and fault.headers["retry-after"] == "2"
    assert fault.json()["error"]["status"] == "UNAVAILABLE" and fault.json()["error"]["errors"][0]["reason"] == "backendError"
    assert sam.client.get("/messages").status_code == 200  # count defaults to 1

    control.patch("/config", json={"gmail_quota_per_minute": 7, "access_token_ttl": 5})
    assert control.post("/reset").status_code == 204
    config = control.get("/config").json()
    assert config["gmail_quota_per_minute"] == 15_000 and config["access_token_ttl"] == 3600
