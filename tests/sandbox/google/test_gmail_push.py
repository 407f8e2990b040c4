"""users.watch/stop and Pub/Sub push delivery: the envelope, the OIDC token
google-auth verifies, at most one push per second per mailbox, label filters,
subscriptions, retries, and the ends of a watch."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime

import google.auth.transport.requests
import pytest
import requests
from google.oauth2 import id_token

AUDIENCE = "https://crm.example/webhooks/gmail"
ACCOUNT = "gmail-push@crm-project.iam.gserviceaccount.com"
TOPIC = "projects/crm-project/topics/gmail"


def _verify(server, token: str, audience: str, certs: str = "/oauth2/v1/certs") -> dict:
    session = requests.Session()
    session.verify = server.ca_file
    return id_token.verify_token(token, google.auth.transport.requests.Request(session=session), audience=audience,
                                 certs_url=server.base_url + certs)


def _data(received) -> dict:
    return json.loads(base64.b64decode(received.json()["message"]["data"]))


def _settled(control, timeout: float = 10.0) -> None:
    """Wait until the sandbox owes no push (every one due was delivered or given up)."""
    deadline = time.monotonic() + timeout
    while control.get("/google/pushes/outstanding").json()["outstanding"]:
        assert time.monotonic() < deadline, "pushes still owed"
        time.sleep(0.02)


def _quiet(receiver, control) -> None:
    """Nothing was pushed, and nothing is still on its way."""
    _settled(control)
    assert receiver.notifications() == []


@pytest.fixture()
def push_config(control, receiver):
    response = control.patch("/config", json={"gmail_push_endpoint": receiver.base_url + "/ok",
                                              "gmail_push_audience": AUDIENCE, "gmail_push_service_account": ACCOUNT})
    assert response.status_code == 200
    return response.json()


def test_push_envelope_and_oidc_token(gmail, deliver, receiver, push_config, sandbox_server):
    sam = gmail()
    before = time.time() * 1000
    watch = sam.post("/watch", "WatchResponse", json={"topicName": TOPIC, "labelIds": ["INBOX"], "labelFilterBehavior": "INCLUDE"})
    assert watch["historyId"] == sam.profile()["historyId"]
    assert abs(int(watch["expiration"]) - (before + 7 * 24 * 3600 * 1000)) < 5000
    arrived = deliver(sam.address)
    (push,) = receiver.wait_for(lambda got: len(got) >= 1)
    assert push.path == "/ok" and push.headers["content-type"] == "application/json"
    assert push.headers["user-agent"].startswith("APIs-Google")
    envelope = push.json()
    assert set(envelope) == {"message", "subscription"}
    assert envelope["subscription"] == "projects/crm-project/subscriptions/gmail-sandbox-push"
    message = envelope["message"]
    assert set(message) == {"attributes", "data", "messageId", "message_id", "publishTime", "publish_time"}
    assert message["messageId"].isdigit() and message["messageId"] == message["message_id"]
    datetime.fromisoformat(message["publishTime"].replace("Z", "+00:00"))
    assert _data(push) == {"emailAddress": "sam@gmail.test", "historyId": sam.profile()["historyId"]}
    history = sam.get("/history", "ListHistoryResponse", params={"startHistoryId": watch["historyId"]})
    assert history["history"][0]["messagesAdded"][0]["message"]["id"] == arrived["id"]

    scheme, _, token = push.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    for certs in ("/oauth2/v1/certs", "/oauth2/v3/certs"):
        claims = _verify(sandbox_server, token, AUDIENCE, certs)
        assert claims["iss"] == "https://accounts.google.com"
        assert claims["email"] == ACCOUNT and claims["email_verified"] is True
        assert claims["sub"].isdigit() and claims["exp"] > claims["iat"]
    with pytest.raises(ValueError):
        _verify(sandbox_server, token, "https://someone-else.example")


def test_at_most_one_push_per_second_per_mailbox(gmail, deliver, receiver, push_config, control):
    sam = gmail()
    other = gmail("other@gmail.test")
    sam.post("/watch", json={"topicName": TOPIC})
    other.post("/watch", json={"topicName": TOPIC})
    for i in range(5):
        deliver(sam.address, subject=f"burst {i}")
    deliver(other.address)
    receiver.wait_for(lambda got: len(got) >= 3, timeout=5)
    _settled(control)  # nothing more is owed
    pushes = [r for r in control.get("/google/pushes").json() if r["mailbox"] == sam.address]
    assert len(pushes) == 2 and all(p["ok"] and p["status"] == 202 for p in pushes)
    first, second = (datetime.fromisoformat(p["publishTime"].replace("Z", "+00:00")) for p in pushes)
    assert (second - first).total_seconds() >= 0.95
    assert pushes[-1]["historyId"] == sam.profile()["historyId"]  # the coalesced push carries the latest id
    by_mailbox = {}
    for item in receiver.notifications():
        by_mailbox.setdefault(_data(item)["emailAddress"], []).append(item)
    assert len(by_mailbox["sam@gmail.test"]) == 2 and len(by_mailbox["other@gmail.test"]) == 1


def test_subscriptions_label_filter_and_stop(gmail, deliver, receiver, control, sandbox_server):
    control.patch("/config", json={"gmail_push_min_interval": 0, "gmail_push_history_id_as_number": True})
    created = control.post("/google/pubsub/subscriptions", json={
        "topic": TOPIC, "pushEndpoint": receiver.base_url + "/ok", "audience": "aud-1", "serviceAccountEmail": ACCOUNT})
    assert created.status_code == 201
    name = created.json()["name"]
    sam = gmail()
    sam.post("/watch", json={"topicName": TOPIC, "labelIds": ["INBOX"], "labelFilterBehavior": "include"})
    control.post("/mailboxes/sam@gmail.test/send", json={"to": "carol@example.com", "subject": "sent, not inbox"})
    _quiet(receiver, control)
    deliver(sam.address)
    (push,) = receiver.wait_for(lambda got: len(got) >= 1)
    assert push.json()["subscription"] == name
    assert _data(push)["historyId"] == int(sam.profile()["historyId"])  # the number form, when configured
    assert _verify(sandbox_server, push.headers["authorization"].split()[1], "aud-1")["email"] == ACCOUNT

    receiver.clear()
    sam.post("/stop", status=204)
    deliver(sam.address)
    _quiet(receiver, control)

    # A topic nobody subscribed to: Pub/Sub drops the message.
    sam.post("/watch", json={"topicName": "projects/crm-project/topics/nobody-listens"})
    deliver(sam.address)
    _quiet(receiver, control)
    assert control.get("/google/pushes").json()[-1]["error"].startswith("no push subscription")
    assert control.delete(f"/google/pubsub/subscriptions/{name}").status_code == 204

    bad = sam.post("/watch", json={"topicName": "gmail-topic"}, status=400)
    assert bad["error"]["message"] == "Invalid topicName does not match projects/SOME_PROJECT/topics/*"


def test_failed_push_is_retried(gmail, deliver, receiver, control, sandbox_server):
    control.patch("/config", json={"gmail_push_endpoint": receiver.base_url + "/flaky"})
    sam = gmail()
    sam.post("/watch", json={"topicName": TOPIC})
    deliver(sam.address)
    received = receiver.wait_for(lambda got: len(got) >= 2)
    assert received[0].body == received[1].body  # the same Pub/Sub message, delivered again
    _settled(control)  # the second attempt's outcome is logged
    attempts = [(p["attempt"], p["status"], p["ok"]) for p in control.get("/google/pushes").json()]
    assert attempts == [(1, 500, False), (2, 202, True)]
    # With no audience configured, Pub/Sub's default audience is the push endpoint URL.
    token = received[1].headers["authorization"].split()[1]
    assert _verify(sandbox_server, token, receiver.base_url + "/flaky")["aud"] == receiver.base_url + "/flaky"


def test_expired_watch_and_revoked_consent_stop_pushes(gmail, deliver, receiver, push_config, control):
    control.patch("/config", json={"gmail_push_min_interval": 0})
    sam = gmail()
    sam.post("/watch", json={"topicName": TOPIC})
    assert control.post("/google/watches/sam@gmail.test/expire").json()["active"] is False
    deliver(sam.address)
    _quiet(receiver, control)

    sam.post("/watch", json={"topicName": TOPIC})  # renewal
    deliver(sam.address)
    receiver.wait_for(lambda got: len(got) >= 1)
    receiver.clear()
    control.post("/mailboxes/sam@gmail.test/revoke")
    assert control.get("/google/watches").json() == []
    deliver(sam.address)
    _quiet(receiver, control)
