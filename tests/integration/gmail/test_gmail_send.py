"""Sending through the sandbox's Gmail: new threads, replies that join the Gmail
thread, our Message-ID kept, attachments, and never sending twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from sync_engine.domain import Address, ChangeKind, Folder, OutgoingAttachment, OutgoingMessage, ThrottledError


def outgoing(sender: str, **overrides) -> OutgoingMessage:
    fields = dict(
        message_id=f"<crm-{uuid.uuid4().hex}@emailsync.test>",
        sender=Address(sender, "Test User"),
        to=[Address("client@example.com", "A Client")],
        subject="Your quote",
        html="<p>Hello from the CRM</p>",
        text="Hello from the CRM",
    )
    fields.update(overrides)
    return OutgoingMessage(**fields)


def sends(world, address):
    return [r for r in world.requests(address, "/gmail/v1/users/me/messages/send") if r["method"] == "POST"]


async def test_send_new_message_lands_in_sent_with_our_message_id(connected, world, checkpoint_factory):
    account, client = connected
    message = outgoing(account.address, cc=[Address("boss@example.com")], bcc=[Address("audit@crm.test")])
    checkpoint = checkpoint_factory()
    sent = await client.send(message, checkpoint)
    assert checkpoint.saves and checkpoint.saves[0]["attempted"] is True
    assert sent.message_id == message.message_id
    (copy,) = world.messages(account.address, "sent")
    assert copy["id"] == sent.provider_id
    assert copy["internetMessageId"] == message.message_id
    assert copy["conversationId"] == sent.thread_key
    assert copy["subject"] == "Your quote"
    assert [a["address"] for a in copy["to"]] == ["client@example.com"]
    assert [a["address"] for a in copy["cc"]] == ["boss@example.com"]
    # the synced Sent copy carries our Message-ID, so the engine recognises it
    got = await client.get_message(sent.provider_id)
    assert got.message_id == message.message_id and got.folder is Folder.SENT


async def test_reply_joins_the_gmail_thread(connected, world, checkpoint_factory):
    account, client = connected
    inbound = world.inbound(account.address, subject="Question", text="How much?")
    reply = outgoing(
        account.address,
        subject="Re: Question",
        in_reply_to=inbound["internetMessageId"],
        references=[inbound["internetMessageId"]],
        reply_to_provider_id=inbound["id"],
        thread_key=inbound["conversationId"],
    )
    sent = await client.send(reply, checkpoint_factory())
    assert sent.thread_key == inbound["conversationId"]
    assert sent.message_id == reply.message_id
    copy = world.message(account.address, sent.provider_id)
    assert copy["conversationId"] == inbound["conversationId"]
    assert copy["internetMessageId"] == reply.message_id
    assert copy["inReplyTo"] == inbound["internetMessageId"]
    assert inbound["internetMessageId"] in copy["references"]
    assert copy["subject"] == "Re: Question"
    (request,) = sends(world, account.address)
    assert request["status"] == 200


async def test_reply_known_only_by_the_replied_message(connected, world, checkpoint_factory):
    account, client = connected
    inbound = world.inbound(account.address, subject="Ping", text="?")
    reply = outgoing(account.address, subject="Re: Ping", in_reply_to=inbound["internetMessageId"],
                     reply_to_provider_id=inbound["id"])
    sent = await client.send(reply, checkpoint_factory())
    assert sent.thread_key == inbound["conversationId"]


async def test_send_with_attachment_round_trips(connected, world, checkpoint_factory):
    account, client = connected
    pdf = b"%PDF-1.4 quote\n%%EOF\n"
    sent = await client.send(
        outgoing(account.address, attachments=[OutgoingAttachment("Angebot Müller.pdf", "application/pdf", pdf)]),
        checkpoint_factory(),
    )
    got = await client.get_message(sent.provider_id)
    (att,) = got.attachments
    assert att.filename == "Angebot Müller.pdf" and att.content_type == "application/pdf"
    assert await client.fetch_attachment(sent.provider_id, att.provider_attachment_id) == pdf


async def test_large_reply_goes_through_the_upload_uri_and_keeps_the_thread(connected, world, checkpoint_factory):
    account, client = connected
    inbound = world.inbound(account.address, subject="Files", text="send them")
    files = [OutgoingAttachment(f"part{i}.zip", "application/zip", bytes([i]) * (2_500_000)) for i in range(2)]
    reply = outgoing(account.address, subject="Re: Files", in_reply_to=inbound["internetMessageId"],
                     references=[inbound["internetMessageId"]], thread_key=inbound["conversationId"],
                     attachments=files)
    sent = await client.send(reply, checkpoint_factory())
    uploads = world.requests(account.address, "/upload/gmail/v1/users/me/messages/send")
    assert [(r["status"], "uploadType=multipart" in r["query"]) for r in uploads] == [(200, True)]
    assert sent.thread_key == inbound["conversationId"]
    got = await client.get_message(sent.provider_id)
    assert [a.filename for a in got.attachments] == ["part0.zip", "part1.zip"]
    assert got.message_id == reply.message_id
    data = await client.fetch_attachment(sent.provider_id, got.attachments[1].provider_attachment_id)
    assert data == files[1].content


async def test_retry_of_a_send_that_went_out_sends_nothing(connected, world, checkpoint_factory):
    account, client = connected
    message = outgoing(account.address)
    checkpoint = checkpoint_factory()
    first = await client.send(message, checkpoint)  # went out, then the job died before recording it
    again = await client.send(message, checkpoint_factory(checkpoint.state))
    assert (again.provider_id, again.thread_key, again.message_id) == (first.provider_id, first.thread_key,
                                                                          first.message_id)
    assert len(sends(world, account.address)) == 1
    assert len([m for m in world.messages(account.address, "sent")
                if m["internetMessageId"] == message.message_id]) == 1
    searches = [r for r in world.requests(account.address, "/gmail/v1/users/me/messages") if "rfc822msgid" in r["query"]]
    assert len(searches) == 1


async def test_crash_between_checkpoint_and_send_sends_exactly_once(connected, world, checkpoint_factory):
    account, client = connected
    message = outgoing(account.address)
    dying = checkpoint_factory(fail_on_save=1)
    with pytest.raises(RuntimeError):
        await client.send(message, dying)
    assert sends(world, account.address) == []
    # Right away, the retry cannot tell an in-flight send from a lost one: it waits.
    with pytest.raises(ThrottledError):
        await client.send(message, checkpoint_factory(dying.state))
    assert sends(world, account.address) == []
    # Later (the grace has passed), it looks, finds nothing, and sends once.
    later = dict(dying.state, saved_at=(datetime.now(UTC) - timedelta(minutes=10)).isoformat())
    sent = await client.send(message, checkpoint_factory(later))
    assert len(sends(world, account.address)) == 1
    again = await client.send(message, checkpoint_factory(later))
    assert again.provider_id == sent.provider_id and len(sends(world, account.address)) == 1


async def test_sent_copy_syncs_once_with_our_message_id(connected, world, checkpoint_factory):
    account, client = connected
    cursor = [p async for p in client.sync(None)][-1].cursor
    message = outgoing(account.address)
    sent = await client.send(message, checkpoint_factory())
    changes = [c for p in [p async for p in client.sync(cursor)] for c in p.changes]
    (change,) = [c for c in changes if c.provider_id == sent.provider_id]
    assert change.kind is ChangeKind.UPSERT
    assert change.message.message_id == message.message_id and change.message.folder is Folder.SENT
