"""Sending through the sandbox's Graph: new thread, reply, attachments, never twice."""

from __future__ import annotations

import pytest

from sync_engine.domain import Address, OutgoingAttachment, OutgoingMessage, PermanentSendError


def outgoing(account, n: int = 1, **overrides) -> OutgoingMessage:
    fields = dict(
        message_id=f"<crm-{n}-{account.address.split('@')[0]}@emailsync.test>",
        sender=Address(account.address, account.display_name),
        to=[Address("client@example.com", "A Client")],
        subject="Your quote",
        html="<p>Here is your quote.</p>",
        text=None,
    )
    fields.update(overrides)
    return OutgoingMessage(**fields)


def send_calls(world, address):
    return [r for r in world.requests(address) if r["method"] == "POST" and r["path"].endswith("/send")]


async def test_new_message_lands_once_in_sent_items(connected, world, checkpoint_factory):
    account, client = connected
    message = outgoing(account, cc=[Address("boss@example.com")], bcc=[Address("bcc@crm.test")])
    checkpoint = checkpoint_factory()
    sent = await client.send(message, checkpoint)

    (copy,) = world.messages(account.address, "sentitems")
    assert copy["id"] == sent.provider_id  # the immutable draft id is the Sent Items id
    assert copy["internetMessageId"] == message.message_id == sent.message_id
    assert copy["conversationId"] == sent.thread_key
    assert copy["subject"] == "Your quote" and copy["html"] == "<p>Here is your quote.</p>"
    assert [a["address"] for a in copy["to"]] == ["client@example.com"]
    assert [a["address"] for a in copy["cc"]] == ["boss@example.com"]
    assert [a["address"] for a in copy["bcc"]] == ["bcc@crm.test"]
    assert world.messages(account.address, "drafts") == []
    assert checkpoint.saves[-1]["draft_id"] == sent.provider_id and checkpoint.saves[-1]["ready"] is True
    assert len(send_calls(world, account.address)) == 1


async def test_reply_joins_the_conversation(connected, world, checkpoint_factory):
    account, client = connected
    original = world.inbound(account.address, subject="Need a quote", text="hi",
                             **{"from": {"address": "client@example.com", "name": "A Client"}})
    message = outgoing(account, subject="Re: Need a quote", reply_to_provider_id=original["id"],
                       thread_key=original["conversationId"], in_reply_to=original["internetMessageId"],
                       references=[original["internetMessageId"]], html="<p>Sure.</p>")
    sent = await client.send(message, checkpoint_factory())

    (copy,) = world.messages(account.address, "sentitems")
    assert copy["conversationId"] == original["conversationId"] == sent.thread_key
    assert copy["inReplyTo"] == original["internetMessageId"]
    assert original["internetMessageId"] in copy["references"]
    assert copy["subject"] == "Re: Need a quote"
    assert copy["html"] == "<p>Sure.</p>"  # our body, not the quoted draft
    assert [a["address"] for a in copy["to"]] == ["client@example.com"]
    # Ours if the server let us set it on the draft, Graph's otherwise: either way the
    # returned Message-ID is the one the Sent Items copy carries.
    assert copy["internetMessageId"] == sent.message_id
    assert world.messages(account.address, "drafts") == []


async def test_reply_by_thread_key_only(connected, world, checkpoint_factory):
    account, client = connected
    original = world.inbound(account.address, subject="Thread", text="hi")
    sent = await client.send(outgoing(account, subject="Re: Thread", thread_key=original["conversationId"]),
                             checkpoint_factory())
    (copy,) = world.messages(account.address, "sentitems")
    assert copy["conversationId"] == original["conversationId"] == sent.thread_key
    assert copy["inReplyTo"] == original["internetMessageId"]


async def test_reply_to_a_deleted_message_goes_out_as_new(connected, world, control, checkpoint_factory):
    account, client = connected
    original = world.inbound(account.address, subject="Gone soon", text="hi")
    control.delete(f"/mailboxes/{account.address}/messages/{original['id']}")
    sent = await client.send(outgoing(account, subject="Re: Gone soon", reply_to_provider_id=original["id"]),
                             checkpoint_factory())
    (copy,) = world.messages(account.address, "sentitems")
    assert copy["id"] == sent.provider_id and copy["subject"] == "Re: Gone soon"


async def test_retry_after_a_completed_send_does_not_send_again(connected, world, checkpoint_factory):
    account, client = connected
    message = outgoing(account)
    checkpoint = checkpoint_factory()
    first = await client.send(message, checkpoint)
    # The worker died before recording success: the job runs again with the saved state.
    retry = await client.send(message, checkpoint_factory(checkpoint.state))
    assert retry == first
    assert len(world.messages(account.address, "sentitems")) == 1
    assert len(send_calls(world, account.address)) == 1


async def test_worker_killed_between_checkpoint_and_send(connected, world, checkpoint_factory):
    account, client = connected
    message = outgoing(account, attachments=[OutgoingAttachment("a.txt", "text/plain", b"hello")])
    dying = checkpoint_factory(fail_on_save=2)  # 1st save: half-built draft; 2nd: ready, then crash
    with pytest.raises(RuntimeError):
        await client.send(message, dying)
    assert world.messages(account.address, "sentitems") == []
    (draft,) = world.messages(account.address, "drafts")
    sent = await client.send(message, checkpoint_factory(dying.state))
    assert sent.provider_id == draft["id"]
    (copy,) = world.messages(account.address, "sentitems")
    assert [a["filename"] for a in copy["attachments"]] == ["a.txt"]
    assert world.messages(account.address, "drafts") == []
    assert len(send_calls(world, account.address)) == 1


async def test_worker_killed_while_building_the_draft(connected, world, checkpoint_factory):
    account, client = connected
    message = outgoing(account, attachments=[OutgoingAttachment("a.txt", "text/plain", b"hello")])
    dying = checkpoint_factory(fail_on_save=1)  # fails right after saving the half-built draft
    with pytest.raises(RuntimeError):
        await client.send(message, dying)
    assert dying.state["ready"] is False and world.messages(account.address, "sentitems") == []
    sent = await client.send(message, checkpoint_factory(dying.state))
    assert world.messages(account.address, "drafts") == []  # the half-built one was discarded
    (copy,) = world.messages(account.address, "sentitems")
    assert copy["id"] == sent.provider_id and len(copy["attachments"]) == 1


async def test_job_cancelled_while_building_the_draft(connected, world, checkpoint_factory):
    import asyncio

    account, client = connected
    message = outgoing(account, attachments=[OutgoingAttachment("a.txt", "text/plain", b"hello")])
    # Cancellation (a killed job) runs no cleanup: the half-built draft stays behind...
    dying = checkpoint_factory(fail_on_save=1, fail_with=asyncio.CancelledError)
    with pytest.raises(asyncio.CancelledError):
        await client.send(message, dying)
    (half_built,) = world.messages(account.address, "drafts")
    assert half_built["attachments"] == []
    # ...and the retry discards it, then builds and sends a complete one.
    sent = await client.send(message, checkpoint_factory(dying.state))
    assert sent.provider_id != half_built["id"]
    assert world.messages(account.address, "drafts") == []
    (copy,) = world.messages(account.address, "sentitems")
    assert [a["filename"] for a in copy["attachments"]] == ["a.txt"]


async def test_attachments_go_out_with_the_message(connected, world, checkpoint_factory):
    account, client = connected
    pdf = b"%PDF-1.4\n" + b"x" * 200_000
    message = outgoing(account, text="see attached", html=None,
                       attachments=[OutgoingAttachment("quote.pdf", "application/pdf", pdf)])
    await client.send(message, checkpoint_factory())
    (copy,) = world.messages(account.address, "sentitems")
    assert copy["text"] == "see attached"
    assert [(a["filename"], a["contentType"], a["size"]) for a in copy["attachments"]] == [
        ("quote.pdf", "application/pdf", len(pdf))
    ]


async def test_graph_refusal_is_permanent(connected, world, checkpoint_factory):
    account, client = connected
    world.fault(status=400, path="/me/messages", method="POST",
                body={"error": {"code": "ErrorInvalidRecipients", "message": "bad"}})
    with pytest.raises(PermanentSendError):
        await client.send(outgoing(account), checkpoint_factory())
    assert world.messages(account.address, "sentitems") == []
