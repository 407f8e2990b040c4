"""Graph subscriptions: validation handshake, change and lifecycle notifications."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from tests.support.samples import SAMPLES


def _expiry(minutes: int = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _deliveries(control, count: int, *, items: bool = False) -> list[dict]:
    """The sandbox's delivery log, once it holds `count` notification attempts
    (or delivered items, when `items` is true).

    The receiver records a POST before the sandbox has read the response and
    logged the attempt, so the log may lag the receiver by a moment."""
    deadline = time.monotonic() + 5
    while True:
        rows = [d for d in control.get("/notifications").json() if d["kind"] == "notification"]
        seen = sum(d["items"] for d in rows if d["ok"]) if items else len(rows)
        if seen >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


def _subscription(receiver, path: str = "/ok", **extra) -> dict:
    return {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.base_url + path,
        "resource": "me/mailFolders('Inbox')/messages",
        "expirationDateTime": _expiry(),
        "clientState": "secretClientValue",
        **extra,
    }


async def test_validation_handshake_and_create_response(outlook, receiver):
    alice = outlook()
    async with alice.graph() as graph:
        response = await graph.post("/subscriptions", json=_subscription(receiver, "/ok", lifecycleNotificationUrl=receiver.base_url + "/ok"))
    assert response.status_code == 201, response.text
    sample_keys = set(json.loads((SAMPLES / "graph_subscription_create_response.json").read_text()))
    assert sample_keys <= set(response.json())
    assert response.json()["clientState"] == "secretClientValue"
    (validation,) = receiver.received  # same URL for both: validated once
    assert validation.headers["content-type"].startswith("text/plain")
    assert validation.body == b""
    assert validation.query["validationToken"].startswith("Validation: Testing client application reachability")


async def test_wrong_echo_or_unreachable_endpoint_fails_validation(outlook, receiver, control):
    alice = outlook()
    async with alice.graph() as graph:
        wrong = await graph.post("/subscriptions", json=_subscription(receiver, "/wrong"))
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "ValidationError"
        unreachable = await graph.post("/subscriptions", json={**_subscription(receiver), "notificationUrl": "http://127.0.0.1:9/hook"})
        assert unreachable.status_code == 400 and unreachable.json()["error"]["code"] == "ValidationError"
        assert (await graph.get("/subscriptions")).json()["value"] == []
    control.patch("/config", json={"webhook_allow_http": False})
    async with alice.graph() as graph:
        insecure = await graph.post("/subscriptions", json=_subscription(receiver))
        assert insecure.status_code == 400


async def test_expiration_limits(outlook, receiver):
    alice = outlook()
    async with alice.graph() as graph:
        too_far = await graph.post("/subscriptions", json={**_subscription(receiver), "expirationDateTime": _expiry(4231)})
        assert too_far.status_code == 400 and "4230" in too_far.json()["error"]["message"]
        past = await graph.post("/subscriptions", json={**_subscription(receiver), "expirationDateTime": _expiry(-5)})
        assert past.status_code == 400
        ok = await graph.post("/subscriptions", json={**_subscription(receiver), "expirationDateTime": _expiry(4229)})
        assert ok.status_code == 201
        sub_id = ok.json()["id"]
        renewed = await graph.patch(f"/subscriptions/{sub_id}", json={"expirationDateTime": _expiry(120)})
        assert renewed.status_code == 200 and renewed.json()["expirationDateTime"] != ok.json()["expirationDateTime"]
        too_far_renewal = await graph.patch(f"/subscriptions/{sub_id}", json={"expirationDateTime": _expiry(5000)})
        assert too_far_renewal.status_code == 400
        assert (await graph.delete(f"/subscriptions/{sub_id}")).status_code == 204
        assert (await graph.get(f"/subscriptions/{sub_id}")).status_code == 404


async def test_change_notifications_are_prompt_and_shaped_like_graph(outlook, receiver, control):
    alice = outlook()
    async with alice.graph(Prefer='IdType="ImmutableId"') as graph:
        sub = (await graph.post("/subscriptions", json=_subscription(receiver))).json()
    started = time.monotonic()
    message = control.post(f"/mailboxes/{alice.address}/inbound", json={"from": "bob@x.test", "subject": "s", "text": "t"}).json()
    receiver.wait_for(lambda got: any("validationToken" not in r.query for r in got), timeout=5)
    assert time.monotonic() - started < 1.0
    (created,) = receiver.notifications()
    assert created.headers["content-type"].startswith("application/json")
    (item,) = created.json()["value"]
    sample = json.loads((SAMPLES / "graph_notification.json").read_text())["value"][0]
    assert set(sample) <= set(item)
    assert item["subscriptionId"] == sub["id"] and item["clientState"] == "secretClientValue"
    assert item["changeType"] == "created"
    assert item["resource"] == f"Users/{alice.user_id}/Messages/{message['id']}"
    assert item["resourceData"]["id"] == message["id"] and item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Message"

    control.patch(f"/mailboxes/{alice.address}/messages/{message['id']}", json={"isRead": True})
    control.delete(f"/mailboxes/{alice.address}/messages/{message['id']}")
    got = receiver.wait_for(lambda got: sum(len(r.json()["value"]) for r in got if "validationToken" not in r.query) >= 3)
    kinds = [v["changeType"] for r in got if "validationToken" not in r.query for v in r.json()["value"]]
    assert kinds == ["created", "updated", "deleted"]
    deliveries = _deliveries(control, 3, items=True)
    print("queued ms:", [d["queuedMs"] for d in deliveries], "post ms:", [d["durationMs"] for d in deliveries])
    assert all(d["ok"] and d["queuedMs"] < 100 for d in deliveries)


async def test_inbox_subscription_ignores_other_folders_and_flaky_endpoint_gets_retries(outlook, receiver, control):
    alice = outlook()
    async with alice.graph() as graph:
        assert (await graph.post("/subscriptions", json=_subscription(receiver, "/flaky", changeType="created"))).status_code == 201
    control.post(f"/mailboxes/{alice.address}/send", json={"to": "bob@x.test", "subject": "out", "text": "t"})
    control.post(f"/mailboxes/{alice.address}/inbound", json={"from": "bob@x.test", "subject": "in", "text": "t"})
    got = receiver.wait_for(lambda got: len([r for r in got if "validationToken" not in r.query]) >= 2)
    posts = [r for r in got if "validationToken" not in r.query]
    assert posts[0].body == posts[1].body  # the 500 was retried with the same payload
    assert [v["changeType"] for v in posts[1].json()["value"]] == ["created"]
    assert [d["status"] for d in _deliveries(control, 2)] == [500, 202]


async def test_lifecycle_events_and_revocation(outlook, receiver, control):
    alice = outlook()
    body = _subscription(receiver, "/ok", lifecycleNotificationUrl=receiver.base_url + "/lifecycle")
    async with alice.graph() as graph:
        sub = (await graph.post("/subscriptions", json=body)).json()
    assert control.post(f"/subscriptions/{sub['id']}/lifecycle", json={"event": "missed"}).status_code == 202
    got = receiver.wait_for(lambda got: any("validationToken" not in r.query for r in got))
    assert {r.path for r in got if "validationToken" in r.query} == {"/ok", "/lifecycle"}
    (missed,) = [r.json()["value"][0] for r in got if "validationToken" not in r.query and r.path == "/lifecycle"]
    sample = json.loads((SAMPLES / "graph_lifecycle_missed.json").read_text())["value"][0]
    assert set(sample) <= set(missed) and missed["lifecycleEvent"] == "missed"
    assert missed["clientState"] == "secretClientValue"

    receiver.clear()
    control.post(f"/mailboxes/{alice.address}/revoke")
    got = receiver.wait_for(lambda got: len(got) >= 1)
    assert got[0].path == "/lifecycle" and got[0].json()["value"][0]["lifecycleEvent"] == "subscriptionRemoved"
    assert control.get("/subscriptions").json() == []


async def test_expired_subscription_stops_notifying(outlook, receiver, control):
    alice = outlook()
    async with alice.graph() as graph:
        sub = (await graph.post("/subscriptions", json=_subscription(receiver))).json()
    control.post(f"/subscriptions/{sub['id']}/expire")
    control.post(f"/mailboxes/{alice.address}/inbound", json={"from": "bob@x.test", "subject": "s", "text": "t"})
    # a second, live subscription proves delivery works while the expired one stays silent
    async with alice.graph() as graph:
        live = (await graph.post("/subscriptions", json=_subscription(receiver, "/live"))).json()
    control.post(f"/mailboxes/{alice.address}/inbound", json={"from": "bob@x.test", "subject": "s2", "text": "t"})
    receiver.wait_for(lambda got: any(r.path == "/live" and "validationToken" not in r.query for r in got))
    ids = {v["subscriptionId"] for r in receiver.notifications() for v in r.json()["value"]}
    assert ids == {live["id"]}
    async with alice.graph() as graph:
        assert (await graph.patch(f"/subscriptions/{sub['id']}", json={"expirationDateTime": _expiry()})).status_code == 404


async def test_mailbox_wide_subscription_sees_sent_mail_with_rest_ids(outlook, receiver, control):
    alice = outlook()
    async with alice.graph() as graph:
        body = {**_subscription(receiver), "resource": f"/users/{alice.user_id}/messages", "changeType": "created"}
        assert (await graph.post("/subscriptions", json=body)).status_code == 201
    sent = control.post(f"/mailboxes/{alice.address}/send", json={"to": "bob@x.test", "subject": "out", "text": "t"}).json()
    got = receiver.wait_for(lambda got: any("validationToken" not in r.query for r in got))
    (item,) = [v for r in got if "validationToken" not in r.query for v in r.json()["value"]]
    assert item["changeType"] == "created" and item["resourceData"]["id"] == sent["restId"]  # no ImmutableId preference
