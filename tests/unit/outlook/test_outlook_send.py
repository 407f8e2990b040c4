"""Send: header-injection rejection before any call, and the never-twice protocol."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sync_engine.domain import (
    Address,
    OutgoingAttachment,
    OutgoingMessage,
    PermanentSendError,
    ThrottledError,
    TokenSet,
)
from sync_engine.providers.outlook.graph_client import GraphClient
from sync_engine.providers.outlook.send import send_message
from tests.support.sleeps import RecordingSleep

BASE = "https://graph.test/v1.0"


class Checkpoint:
    def __init__(self, state=None):
        self.state = dict(state or {})
        self.saves = []

    async def save(self, state):
        self.saves.append(dict(state))
        self.state = dict(state)


def outgoing(**overrides):
    fields = dict(
        message_id="<crm-1@emailsync.test>",
        sender=Address("me@contoso.com", "Me"),
        to=[Address("Client@Example.com", "Client")],
        subject="Quote",
        html="<p>Hello</p>",
        text=None,
    )
    fields.update(overrides)
    return OutgoingMessage(**fields)


def graph(handler):
    return GraphClient(BASE, TokenSet("at", "rt", None), refresher=None, on_tokens_refreshed=None,
                       transport=httpx.MockTransport(handler), sleep=RecordingSleep())


def no_calls(request):  # pragma: no cover - reaching it fails the test
    raise AssertionError(f"unexpected Graph call {request.method} {request.url}")


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Hi\r\nBcc: victim@example.com"},
        {"subject": "line\nbreak"},
        {"to": [Address("a@example.com\r\nBcc: x@y.z")]},
        {"to": [Address("a@example.com", "Evil\rName")]},
        {"cc": [Address("c@example.com", "C\n")]},
        {"bcc": [Address("b@example.com\n")]},
        {"sender": Address("me@contoso.com", "Me\r\nX-Injected: 1")},
        {"message_id": "<a@b>\r\nX: y"},
        {"in_reply_to": "<a@b>\n"},
        {"references": ["<a@b>", "<c@d>\r\n"]},
        {"attachments": [OutgoingAttachment("a\r\n.txt", "text/plain", b"x")]},
        {"to": [Address("not-an-address")]},
        {"to": [], "cc": [], "bcc": []},
    ],
)
async def test_invalid_messages_rejected_before_any_call(overrides):
    checkpoint = Checkpoint()
    with pytest.raises(ValueError):
        await send_message(graph(no_calls), outgoing(**overrides), checkpoint)
    assert checkpoint.saves == []


async def test_new_message_is_drafted_checkpointed_then_sent():
    log = []

    def handler(request):
        body = json.loads(request.content) if request.content else None
        log.append((request.method, request.url.path, body))
        if request.method == "POST" and request.url.path.endswith("/me/messages"):
            return httpx.Response(201, json={**body, "id": "D1", "conversationId": "C1", "isDraft": True})
        if request.url.path.endswith("/me/messages/D1/send"):
            assert checkpoint.saves and checkpoint.saves[-1]["ready"] is True  # saved *before* sending
            return httpx.Response(202)
        raise AssertionError(request.url)

    checkpoint = Checkpoint()
    sent = await send_message(graph(handler), outgoing(), checkpoint)
    assert (sent.provider_id, sent.thread_key, sent.message_id) == ("D1", "C1", "<crm-1@emailsync.test>")
    created = log[0][2]
    assert created["subject"] == "Quote"
    assert created["body"] == {"contentType": "html", "content": "<p>Hello</p>"}
    assert created["toRecipients"] == [{"emailAddress": {"address": "Client@Example.com", "name": "Client"}}]
    assert created["internetMessageId"] == "<crm-1@emailsync.test>"
    assert [m for m, *_ in log] == ["POST", "POST"]
    assert len(checkpoint.saves) == 1 and checkpoint.saves[0]["draft_id"] == "D1"


async def test_retry_after_the_send_went_out_sends_nothing():
    def handler(request):
        if request.method == "GET" and request.url.path.endswith("/me/messages/D1"):
            return httpx.Response(200, json={"id": "D1", "isDraft": False, "conversationId": "C1",
                                             "internetMessageId": "<crm-1@emailsync.test>"})
        raise AssertionError(f"{request.method} {request.url}")

    checkpoint = Checkpoint({"draft_id": "D1", "ready": True, "saved_at": datetime.now(UTC).isoformat()})
    sent = await send_message(graph(handler), outgoing(), checkpoint)
    assert (sent.provider_id, sent.thread_key, sent.message_id) == ("D1", "C1", "<crm-1@emailsync.test>")
    assert checkpoint.saves == []


async def test_retry_with_a_ready_unsent_draft_sends_it_once():
    sends = 0

    def handler(request):
        nonlocal sends
        if request.method == "GET":
            return httpx.Response(200, json={"id": "D1", "isDraft": True, "conversationId": "C1",
                                             "internetMessageId": "<crm-1@emailsync.test>"})
        if request.url.path.endswith("/me/messages/D1/send"):
            sends += 1
            return httpx.Response(202)
        raise AssertionError(f"{request.method} {request.url}")

    checkpoint = Checkpoint({"draft_id": "D1", "ready": True, "saved_at": datetime.now(UTC).isoformat()})
    sent = await send_message(graph(handler), outgoing(), checkpoint)
    assert sends == 1 and sent.provider_id == "D1"


async def test_half_built_draft_is_deleted_and_rebuilt():
    log = []

    def handler(request):
        log.append((request.method, request.url.path))
        if request.method == "DELETE":
            return httpx.Response(204)
        if request.method == "POST" and request.url.path.endswith("/me/messages"):
            return httpx.Response(201, json={"id": "D2", "conversationId": "C2", "isDraft": True})
        if request.method == "POST" and request.url.path.endswith("/attachments"):
            return httpx.Response(201, json={"id": "A"})
        if request.url.path.endswith("/send"):
            return httpx.Response(202)
        raise AssertionError(request.url)

    checkpoint = Checkpoint({"draft_id": "D1", "ready": False})
    msg = outgoing(attachments=[OutgoingAttachment("a.txt", "text/plain", b"hello")])
    sent = await send_message(graph(handler), msg, checkpoint)
    assert sent.provider_id == "D2"
    assert log[0] == ("DELETE", "/v1.0/me/messages/D1")
    assert [s["ready"] for s in checkpoint.saves] == [False, True]
    assert log[-1] == ("POST", "/v1.0/me/messages/D2/send")


@pytest.mark.parametrize("age, error", [(timedelta(seconds=5), ThrottledError), (timedelta(hours=2), PermanentSendError)])
async def test_vanished_draft_is_never_resent(age, error):
    def handler(request):
        if request.method == "GET" and request.url.path.endswith("/me/messages/D1"):
            return httpx.Response(404, json={"error": {"code": "ErrorItemNotFound", "message": "x"}})
        if request.method == "GET" and request.url.path.endswith("/me/messages"):
            assert "internetMessageId eq '<crm-1@emailsync.test>'" in request.url.params["$filter"]
            return httpx.Response(200, json={"value": []})
        raise AssertionError(f"{request.method} {request.url}")

    saved_at = (datetime.now(UTC) - age).isoformat()
    with pytest.raises(error):
        await send_message(graph(handler), outgoing(), Checkpoint({"draft_id": "D1", "ready": True, "saved_at": saved_at}))


async def test_refused_recipient_is_a_permanent_error():
    def handler(request):
        return httpx.Response(400, json={"error": {"code": "ErrorInvalidRecipients", "message": "bad"}})

    with pytest.raises(PermanentSendError):
        await send_message(graph(handler), outgoing(), Checkpoint())


async def test_large_attachment_goes_through_an_upload_session(sample):
    session = sample("graph_upload_session_response.json")
    content = bytes(range(256)) * (14 * 1024)  # 3.5 MB: over the inline limit
    puts = []

    def handler(request):
        if request.method == "POST" and request.url.path.endswith("/me/messages"):
            return httpx.Response(201, json={"id": "D1", "conversationId": "C1", "isDraft": True})
        if request.url.path.endswith("/attachments/createUploadSession"):
            item = json.loads(request.content)["AttachmentItem"]
            assert item == {"attachmentType": "file", "name": "big.zip", "size": len(content),
                            "contentType": "application/zip"}
            return httpx.Response(201, json=session)
        if request.method == "PUT":
            assert str(request.url) == session["uploadUrl"]
            assert "authorization" not in request.headers  # the uploadUrl is pre-authenticated
            puts.append((request.headers["content-range"], request.content))
            return httpx.Response(200, json={"nextExpectedRanges": []})
        if request.url.path.endswith("/me/messages/D1/send"):
            return httpx.Response(202)
        raise AssertionError(f"{request.method} {request.url}")

    msg = outgoing(attachments=[OutgoingAttachment("big.zip", "application/zip", content)])
    checkpoint = Checkpoint()
    await send_message(graph(handler), msg, checkpoint)
    assert b"".join(chunk for _, chunk in puts) == content
    assert puts[0][0] == f"bytes 0-{len(puts[0][1]) - 1}/{len(content)}"
    assert puts[-1][0].endswith(f"-{len(content) - 1}/{len(content)}")
    assert all(len(chunk) % (320 * 1024) == 0 for _, chunk in puts[:-1])
    assert [s["ready"] for s in checkpoint.saves] == [False, True]
