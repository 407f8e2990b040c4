"""The mailbox and mail mutations at the edge: argument mapping, input validation and
userErrors. The services behind them are replaced here (their behaviour is tested
with the services); what is checked is what the resolvers do around them."""

from __future__ import annotations

import base64
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from api.ids import to_global_id
from db.models import Message
from sync_engine.domain import Provider
from sync_engine.services.errors import ServiceError
from tests.integration.api.conftest import Api
from tests.integration.api.fakes import Calls, patch_service

START = """mutation ($input: StartEmailConnectionInput!) { startEmailConnection(input: $input) {
  authorizationUrl userErrors { field message code } } }"""
DISCONNECT = "mutation { disconnectEmailConnection { emailConnection { address status } userErrors { code message } } }"
REQUEST_SYNC = "mutation { requestSync { emailConnection { address } userErrors { code } } }"
SEND = """mutation ($input: SendEmailInput!) { sendEmail(input: $input) {
  message { id subject } thread { id subject } userErrors { field message code } } }"""
MARK = """mutation ($input: MarkThreadReadInput!) { markThreadRead(input: $input) {
  thread { id unreadCount } userErrors { field code } } }"""


async def test_start_email_connection(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.settings, "allowed_origins", ["https://app.test"])
    calls = Calls()
    patch_service(monkeypatch, api, "connections",
                  start_connection=calls.recorder("start", "https://login.test/authorize?state=s"))
    data = await api.data(
        START, {"input": {"provider": "GMAIL", "redirectUri": "https://app.test/settings", "loginHint": "alice@acme.test"}}
    )
    assert data["startEmailConnection"] == {"authorizationUrl": "https://login.test/authorize?state=s", "userErrors": []}
    (_, _, kwargs), = calls.calls
    assert kwargs == {"sub_account_id": api.seed.sub_a, "user_id": api.seed.user_a, "provider": Provider.GMAIL,
                      "return_to": "https://app.test/settings", "login_hint": "alice@acme.test"}


async def test_start_email_connection_validates_the_redirect(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "connections", start_connection=calls.recorder("start", "x"))
    monkeypatch.setattr(api.settings, "allowed_origins", ["https://app.test"])
    for bad in ["javascript:alert(1)", "/relative", "https://app.test/\r\nSet-Cookie: x",
                # No open redirect: only allowed origins, and no tricks that look like one.
                "https://evil.example/settings", "https://app.test@evil.example/", "https://app.test\\@evil.example/",
                "//evil.example/", "https:\\\\evil.example", "data:text/html,hi", "https://app.test.evil.example/",
                "https://xn--pp-8cd.test/", "https://аpp.test/", "https://app%2etest/", "http://app.test/settings",
                " https://app.test/"]:
        data = await api.data(START, {"input": {"provider": "OUTLOOK", "redirectUri": bad}})
        assert [(e["code"], e["field"]) for e in data["startEmailConnection"]["userErrors"]] == [
            ("INVALID_REDIRECT_URI", "redirectUri")], bad
    data = await api.data(START, {"input": {"provider": "OUTLOOK", "loginHint": "x@y.test\r\nBcc: z@w.test"}})
    assert data["startEmailConnection"]["userErrors"][0]["code"] == "INVALID_LOGIN_HINT"
    assert calls.calls == []


async def test_start_email_connection_service_error(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "connections", start_connection=calls.recorder(
        "start", error=ServiceError("PROVIDER_UNAVAILABLE", "gmail is not configured", "provider")))
    data = await api.data(START, {"input": {"provider": "GMAIL"}})
    assert data["startEmailConnection"] == {
        "authorizationUrl": None,
        "userErrors": [{"field": "provider", "message": "gmail is not configured", "code": "PROVIDER_UNAVAILABLE"}],
    }


async def test_mailbox_mutations_need_a_user(api: Api) -> None:
    for query, variables in [(START, {"input": {"provider": "OUTLOOK"}}), (DISCONNECT, None), (REQUEST_SYNC, None)]:
        body = await api.gql(query, variables, as_="sub_a_key")
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_disconnect_and_request_sync(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    connection = SimpleNamespace(id=api.seed.connection_a)
    patch_service(monkeypatch, api, "connections",
                  disconnect_connection=calls.recorder("disconnect", connection),
                  request_sync=calls.recorder("sync", connection))
    data = await api.data(DISCONNECT)
    assert data["disconnectEmailConnection"] == {"emailConnection": {"address": "alice@acme.test", "status": "ACTIVE"}, "userErrors": []}
    data = await api.data(REQUEST_SYNC)
    assert data["requestSync"] == {"emailConnection": {"address": "alice@acme.test"}, "userErrors": []}
    assert [(name, kwargs) for name, _, kwargs in calls.calls] == [
        ("disconnect", {"sub_account_id": api.seed.sub_a, "user_id": api.seed.user_a}),
        ("sync", {"sub_account_id": api.seed.sub_a, "user_id": api.seed.user_a}),
    ]


async def test_disconnect_when_not_connected(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "connections", disconnect_connection=calls.recorder(
        "disconnect", error=ServiceError("NOT_CONNECTED", "no mailbox is connected")))
    data = await api.data(DISCONNECT, as_="admin_a")
    assert data["disconnectEmailConnection"] == {
        "emailConnection": None, "userErrors": [{"code": "NOT_CONNECTED", "message": "no mailbox is connected"}]
    }


async def seeded_message(api: Api, thread_id: uuid.UUID) -> SimpleNamespace:
    async with api.rt.sessions() as s:
        message_id = (await s.scalars(select(Message.id).where(Message.thread_id == thread_id))).first()
    return SimpleNamespace(id=message_id, thread_id=thread_id)


async def test_send_email_maps_the_request(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    thread_id = api.seed.threads_a[4]
    calls = Calls()
    sent = await seeded_message(api, thread_id)
    patch_service(monkeypatch, api, "sending", send_email=calls.recorder("send", sent))
    content = b"%PDF-1.4 hello"
    data = await api.data(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()),
        "to": ["customer0@client.test"], "cc": ["customer1@client.test"], "subject": "Quote", "text": "Here it is",
        "threadId": to_global_id("Thread", thread_id),
        "attachments": [{"filename": "q.pdf", "contentType": "application/pdf", "contentBase64": base64.b64encode(content).decode()}],
    }})
    payload = data["sendEmail"]
    assert payload["userErrors"] == []
    assert payload["thread"] == {"id": to_global_id("Thread", thread_id), "subject": "Subject 4"}
    assert payload["message"]["id"] == to_global_id("Message", sent.id)
    (_, _, kwargs), = calls.calls
    request = kwargs["request"]
    assert (kwargs["sub_account_id"], kwargs["user_id"]) == (api.seed.sub_a, api.seed.user_a)
    assert request.to == ["customer0@client.test"] and request.cc == ["customer1@client.test"] and request.bcc == []
    assert request.thread_id == thread_id and request.text == "Here it is" and request.html is None
    assert [(a.filename, a.content_type, a.content) for a in request.attachments] == [("q.pdf", "application/pdf", content)]


async def test_send_email_input_validation_happens_before_the_service(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "sending", send_email=calls.recorder("send", None))
    too_big = base64.b64encode(b"\0" * (3 * 1024 * 1024 + 1)).decode()
    base = {"to": ["customer0@client.test"], "subject": "s", "text": "t", "idempotencyKey": "k1"}
    big_input = {"input": {**base, "attachments": [
        {"filename": "big.pdf", "contentType": "application/pdf", "contentBase64": too_big}]}}
    # Past the request body limit (1 MB by default) it is refused before anything runs...
    assert (await api.post(SEND, big_input, auth=api.auth_header("user_a"))).status_code == 413
    # ...and with a limit raised for base64 attachments, the attachment's own limit answers.
    monkeypatch.setattr(api.rt.settings, "max_request_bytes", 8 * 1024 * 1024)
    data = await api.data(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), **base, "attachments": [{"filename": "big.pdf", "contentType": "application/pdf", "contentBase64": too_big}]}})
    assert data["sendEmail"]["userErrors"][0]["code"] == "ATTACHMENT_TOO_LARGE"
    assert data["sendEmail"]["userErrors"][0]["field"] == "attachments.0.contentBase64"
    data = await api.data(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), **base, "attachments": [{"filename": "x.txt", "contentType": "text/plain", "contentBase64": "***"}]}})
    assert data["sendEmail"]["userErrors"][0]["code"] == "INVALID_ATTACHMENT"
    data = await api.data(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), **base, "threadId": to_global_id("Thread", api.seed.thread_b)[:-2]}})
    assert data["sendEmail"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert calls.calls == []


async def test_send_email_service_errors(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "sending", send_email=calls.recorder(
        "send", error=ServiceError("NOT_A_CONTACT", "not a contact of this sub-account: x@y.test", "to")))
    data = await api.data(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": ["x@y.test"], "subject": "s", "text": "t"}})
    assert data["sendEmail"] == {"message": None, "thread": None, "userErrors": [
        {"field": "to", "message": "not a contact of this sub-account: x@y.test", "code": "NOT_A_CONTACT"}]}
    # A code the enum does not know yet keeps its message and reads INVALID.
    patch_service(monkeypatch, api, "sending", send_email=calls.recorder(
        "send", error=ServiceError("SOMETHING_NEW", "new rule", "subject")))
    data = await api.data(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": ["x@y.test"], "subject": "s", "text": "t"}})
    assert data["sendEmail"]["userErrors"] == [{"field": "subject", "message": "new rule", "code": "INVALID"}]


async def test_send_email_needs_a_user(api: Api) -> None:
    body = await api.gql(SEND, {"input": {"idempotencyKey": str(uuid.uuid4()), "to": ["x@y.test"], "subject": "s", "text": "t"}}, as_="sub_a_key")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_mark_thread_read(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    patch_service(monkeypatch, api, "read_state", mark_thread_read=calls.recorder("mark", None))
    thread_gid = to_global_id("Thread", api.seed.threads_a[0])
    data = await api.data(MARK, {"input": {"threadId": thread_gid, "read": False}})
    assert data["markThreadRead"]["thread"]["id"] == thread_gid
    (_, _, kwargs), = calls.calls
    assert kwargs == {"sub_account_id": api.seed.sub_a, "thread_id": api.seed.threads_a[0], "is_read": False}
    data = await api.data(MARK, {"input": {"threadId": "nonsense"}})
    assert data["markThreadRead"] == {"thread": None, "userErrors": [{"field": "threadId", "code": "NOT_FOUND"}]}
    assert len(calls.calls) == 1
