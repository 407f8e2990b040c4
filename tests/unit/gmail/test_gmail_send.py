"""Send: header-injection refusal before any call, threading, and the never-twice protocol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sync_engine.domain import Address, OutgoingAttachment, OutgoingMessage, PermanentSendError, ThrottledError
from sync_engine.providers.gmail.send import send_message


class Checkpoint:
    def __init__(self, state=None, fail_on_save=None):
        self.state = dict(state or {})
        self.saves = []
        self.fail_on_save = fail_on_save

    async def save(self, state):
        self.saves.append(dict(state))
        self.state = dict(state)
        if self.fail_on_save == len(self.saves):
            raise RuntimeError("worker killed right after the commit")


def outgoing(**overrides):
    fields = dict(
        message_id="<crm-1@emailsync.test>",
        sender=Address("me@gmail.test", "Me"),
        to=[Address("client@example.com", "Client")],
        subject="Quote",
        html="<p>Hello</p>",
        text="Hello",
    )
    fields.update(overrides)
    return OutgoingMessage(**fields)


def no_calls(request):  # pragma: no cover - reaching it fails the test
    raise AssertionError(f"unexpected Gmail call {request.method} {request.url}")


async def test_injection_is_refused_before_any_call(make_api):
    api = make_api(httpx.MockTransport(no_calls))
    checkpoint = Checkpoint()
    with pytest.raises(ValueError):
        await send_message(api, outgoing(subject="Hi\r\nBcc: victim@example.com"), checkpoint)
    assert checkpoint.saves == []


async def test_new_message_checkpoint_then_send(fake_gmail, make_api):
    order = []
    api = make_api(fake_gmail.transport())

    class Recording(Checkpoint):
        async def save(self, state):
            order.append(("save", len(fake_gmail.sent)))
            await super().save(state)

    checkpoint = Recording()
    sent = await send_message(api, outgoing(), checkpoint)
    assert order == [("save", 0)]  # saved before anything was sent
    assert checkpoint.state["attempted"] is True and checkpoint.state["message_id"] == "<crm-1@emailsync.test>"
    (request,) = fake_gmail.sent
    assert "threadId" not in request["body"]
    assert request["mime"]["Message-ID"] == "<crm-1@emailsync.test>"
    assert sent.provider_id == "s0001" and sent.thread_key == "t-s0001" and sent.message_id == "<crm-1@emailsync.test>"
    assert fake_gmail.units["send"] == 1


async def test_reply_carries_thread_id_and_threading_headers(fake_gmail, helpers, make_api):
    fake_gmail.add(helpers.full_message("in1", thread="thr-9", message_id="<parent@example.com>"))
    sent = await send_message(
        make_api(fake_gmail.transport()),
        outgoing(subject="Re: Quote", in_reply_to="<parent@example.com>", references=["<parent@example.com>"],
                 thread_key="thr-9", reply_to_provider_id="in1"),
        Checkpoint(),
    )
    (request,) = fake_gmail.sent
    assert request["body"]["threadId"] == "thr-9"
    assert request["mime"]["In-Reply-To"] == "<parent@example.com>"
    assert request["mime"]["References"] == "<parent@example.com>"
    assert request["mime"]["Subject"] == "Re: Quote"
    assert sent.thread_key == "thr-9"


async def test_reply_known_only_by_provider_id_looks_up_its_thread(fake_gmail, helpers, make_api):
    fake_gmail.add(helpers.full_message("in1", thread="thr-7"))
    sent = await send_message(make_api(fake_gmail.transport()),
                              outgoing(in_reply_to="<in1@mail.example.com>", reply_to_provider_id="in1"), Checkpoint())
    assert fake_gmail.sent[0]["body"]["threadId"] == "thr-7" and sent.thread_key == "thr-7"


async def test_vanished_thread_sends_as_a_new_thread(fake_gmail, make_api):
    sent = await send_message(make_api(fake_gmail.transport()), outgoing(thread_key="gone"), Checkpoint())
    assert len(fake_gmail.sent) == 1 and "threadId" not in fake_gmail.sent[0]["body"]
    assert sent.thread_key == "t-s0001"


async def test_retry_after_a_send_whose_result_was_lost_sends_nothing(fake_gmail, make_api):
    api = make_api(fake_gmail.transport())
    checkpoint = Checkpoint()
    first = await send_message(api, outgoing(), checkpoint)  # went out; the job then died
    again = await send_message(api, outgoing(), Checkpoint(checkpoint.state))
    assert len(fake_gmail.sent) == 1
    assert (again.provider_id, again.thread_key, again.message_id) == (first.provider_id, first.thread_key, first.message_id)
    searches = [t for m, t in fake_gmail.calls if "q=rfc822msgid" in t]
    assert len(searches) == 1 and "in%3Asent" in searches[0]


async def test_retry_soon_after_an_unconfirmed_attempt_is_deferred(fake_gmail, make_api):
    api = make_api(fake_gmail.transport())
    checkpoint = Checkpoint(fail_on_save=1)
    with pytest.raises(RuntimeError):
        await send_message(api, outgoing(), checkpoint)  # killed after the commit, before the send
    with pytest.raises(ThrottledError) as info:
        await send_message(api, outgoing(), Checkpoint(checkpoint.state))
    assert 0 < info.value.retry_after <= 90
    assert fake_gmail.sent == []


async def test_retry_after_the_grace_sends_once(fake_gmail, make_api):
    api = make_api(fake_gmail.transport())
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    checkpoint = Checkpoint({"attempted": True, "message_id": "<crm-1@emailsync.test>", "saved_at": old})
    sent = await send_message(api, outgoing(), checkpoint)
    assert len(fake_gmail.sent) == 1 and sent.provider_id == "s0001"
    assert checkpoint.saves[-1]["attempted"] is True and checkpoint.saves[-1]["saved_at"] != old


async def test_refused_message_is_permanent(make_api):
    def handler(request):
        return httpx.Response(400, json={"error": {"code": 400, "message": "Invalid To header", "errors": [{"reason": "invalidArgument"}]}})

    with pytest.raises(PermanentSendError):
        await send_message(make_api(httpx.MockTransport(handler)), outgoing(), Checkpoint())


async def test_server_error_during_send_is_not_retried_in_place(make_api):
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503, json={"error": {"code": 503, "message": "backend", "errors": [{"reason": "backendError"}]}})

    from sync_engine.domain import ProviderError

    with pytest.raises(ProviderError):
        await send_message(make_api(httpx.MockTransport(handler)), outgoing(), Checkpoint())
    assert len(calls) == 1


async def test_large_message_goes_through_the_upload_uri(fake_gmail, helpers, make_api):
    fake_gmail.add(helpers.full_message("in1", thread="thr-9", message_id="<parent@example.com>"))
    big = bytes(range(256)) * (20 * 1024)  # 5 MB: too large for base64 in JSON
    sent = await send_message(
        make_api(fake_gmail.transport()),
        outgoing(subject="Re: Quote", in_reply_to="<parent@example.com>", thread_key="thr-9",
                 attachments=[OutgoingAttachment("video.mp4", "video/mp4", big)]),
        Checkpoint(),
    )
    assert getattr(fake_gmail, "uploads", 0) == 1
    (request,) = fake_gmail.sent
    assert request["body"]["threadId"] == "thr-9"
    (att,) = list(request["mime"].iter_attachments())
    assert att.get_content() == big and sent.thread_key == "thr-9"


async def test_oversized_message_is_refused_for_good(make_api):
    huge = b"x" * (36 * 1024 * 1024)
    with pytest.raises(PermanentSendError):
        await send_message(make_api(httpx.MockTransport(no_calls)),
                           outgoing(attachments=[OutgoingAttachment("a.zip", "application/zip", huge)]), Checkpoint())
