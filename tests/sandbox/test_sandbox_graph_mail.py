"""Graph mail endpoints: sending, drafts, replies, reads, attachments, MIME."""

from __future__ import annotations

import base64
import email
import email.policy
import json

import pytest

from tests.support.samples import SAMPLES

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def _sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def _inbound(control, to: str, **fields):
    body = {"from": {"address": "bob@external.test", "name": "Bob Buyer"}, "subject": "Quote", "text": "Hi Alice", **fields}
    response = control.post(f"/mailboxes/{to}/inbound", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _messages(control, address: str, folder: str | None = None):
    query = f"?folder={folder}" if folder else ""
    return control.get(f"/mailboxes/{address}/messages{query}").json()


async def test_me_and_users_path_address_the_same_mailbox(outlook, control):
    alice = outlook()
    async with alice.graph() as graph:
        me = (await graph.get("/me")).json()
        assert me["userPrincipalName"] == alice.address and me["id"] == alice.user_id
        _inbound(control, alice.address)
        via_me = (await graph.get("/me/messages")).json()["value"]
        via_user = (await graph.get(f"/users/{alice.user_id}/messages")).json()["value"]
        via_folder = (await graph.get("/me/mailfolders('Inbox')/messages")).json()["value"]
        assert [m["id"] for m in via_me] == [m["id"] for m in via_user] == [m["id"] for m in via_folder]
        other = await graph.get("/users/00000000-0000-0000-0000-000000000001/messages")
        assert other.status_code == 403
        unknown = await graph.get("/me/notAThing")
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "BadRequest"


async def test_sendmail_json_sample_with_string_boolean(outlook, control):
    alice = outlook()
    control.post("/mailboxes", json={"provider": "outlook", "address": "fannyd@contoso.onmicrosoft.com"})
    async with alice.graph() as graph:
        response = await graph.post("/me/sendMail", json=json.loads(_sample("graph_sendmail_request.json")))
        assert response.status_code == 202 and response.content == b""
    assert _messages(control, alice.address, "sent") == []  # "saveToSentItems": "false"
    delivered = _messages(control, "fannyd@contoso.onmicrosoft.com", "inbox")
    assert len(delivered) == 1 and delivered[0]["subject"] == "Meet for lunch?" and delivered[0]["isRead"] is False
    assert delivered[0]["cc"][0]["address"] == "danas@contoso.onmicrosoft.com"


async def test_sendmail_with_attachment_and_custom_headers(outlook, control):
    alice = outlook()
    async with alice.graph() as graph:
        with_attachment = json.loads(_sample("graph_sendmail_with_attachment_request.json"))
        assert (await graph.post("/me/sendMail", json=with_attachment)).status_code == 202
        with_headers = json.loads(_sample("graph_sendmail_with_headers_request.json"))
        assert (await graph.post("/me/sendMail", json=with_headers)).status_code == 202
        bad = json.loads(_sample("graph_sendmail_with_headers_request.json"))
        bad["message"]["internetMessageHeaders"][0]["name"] = "Custom-Header"
        rejected = await graph.post("/me/sendMail", json=bad)
        assert rejected.status_code == 400 and rejected.json()["error"]["code"] == "InvalidInternetMessageHeader"
        sent = (await graph.get("/me/mailFolders/sentitems/messages", params={"$expand": "attachments"})).json()["value"]
        assert len(sent) == 2
        by_subject = {m["subject"]: m for m in sent}
        attached = by_subject["Meet for lunch?"]
        assert attached["hasAttachments"] is True
        assert base64.b64decode(attached["attachments"][0]["contentBytes"]) == b"Hello World!"
        headers_msg = by_subject["9/9/2018: concert"]
        selected = (await graph.get(f"/me/messages/{headers_msg['id']}", params={"$select": "internetMessageHeaders"})).json()
        names = {h["name"]: h["value"] for h in selected["internetMessageHeaders"]}
        assert names["x-custom-header-group-id"] == "NV001"
        assert set(selected) == {"@odata.context", "@odata.etag", "id", "internetMessageHeaders"}


async def test_sendmail_mime(outlook, control):
    alice = outlook()
    control.post("/mailboxes", json={"provider": "outlook", "address": "megan@contoso.test"})
    raw = (
        "From: Alice <alice@contoso.test>\r\nTo: Megan <megan@contoso.test>\r\nSubject: MIME hello\r\n"
        "Message-ID: <mime-1@client.test>\r\nContent-Type: text/plain\r\n\r\nBody text\r\n"
    )
    async with alice.graph() as graph:
        ok = await graph.post("/me/sendMail", content=base64.b64encode(raw.encode()), headers={"Content-Type": "text/plain"})
        assert ok.status_code == 202, ok.text
        truncated = await graph.post("/me/sendMail", content=_sample("graph_sendmail_mime_request.txt").encode(),
                                     headers={"Content-Type": "text/plain"})
        assert truncated.status_code == 400
        assert truncated.json()["error"]["code"] == "ErrorMimeContentInvalidBase64String"
    inbox = _messages(control, "megan@contoso.test", "inbox")
    assert inbox[0]["internetMessageId"] == "<mime-1@client.test>" and inbox[0]["text"].strip() == "Body text"


async def test_draft_send_keeps_immutable_id_and_rest_id_changes(outlook, control):
    alice = outlook()
    draft_body = {"subject": "Proposal", "body": {"contentType": "HTML", "content": "<p>See <b>attached</b></p>"},
                  "toRecipients": [{"emailAddress": {"address": "bob@external.test", "name": "Bob"}}]}
    async with alice.graph(**IMMUTABLE) as graph:
        created = await graph.post("/me/messages", json=draft_body)
        assert created.status_code == 201 and created.json()["isDraft"] is True
        draft_id = created.json()["id"]
        attachment = {"@odata.type": "#microsoft.graph.fileAttachment", "name": "quote.pdf",
                      "contentType": "application/pdf", "contentBytes": base64.b64encode(b"%PDF-1.4 x").decode()}
        assert (await graph.post(f"/me/messages/{draft_id}/attachments", json=attachment)).status_code == 201
        assert (await graph.post(f"/me/messages/{draft_id}/send")).status_code == 202
        sent = (await graph.get(f"/me/messages/{draft_id}")).json()
        assert sent["id"] == draft_id and sent["isDraft"] is False
        assert sent["parentFolderId"] == (await graph.get("/me/mailFolders/sentitems")).json()["id"]
        assert sent["hasAttachments"] is True
        again = await graph.post(f"/me/messages/{draft_id}/send")
        assert again.status_code == 400
    async with alice.graph() as graph:  # default (REST) ids are folder-bound
        created = (await graph.post("/me/messages", json=draft_body)).json()
        assert (await graph.post(f"/me/messages/{created['id']}/send")).status_code == 202
        assert (await graph.get(f"/me/messages/{created['id']}")).status_code == 404
        found = (await graph.get("/me/messages", params={"$filter": f"internetMessageId eq '{created['internetMessageId']}'"})).json()
        assert len(found["value"]) == 1 and found["value"][0]["id"] != created["id"]


async def test_create_reply_threads_and_sends(outlook, control):
    alice = outlook()
    received = _inbound(control, alice.address, subject="Pricing", references=["<root@external.test>"],
                        in_reply_to="<root@external.test>", message_id="<q1@external.test>")
    async with alice.graph(**IMMUTABLE) as graph:
        reply = await graph.post(f"/me/messages/{received['id']}/createReply", json={"comment": "Thanks Bob!"})
        assert reply.status_code == 201, reply.text
        draft = reply.json()
        assert draft["isDraft"] is True and draft["subject"] == "RE: Pricing"
        assert draft["conversationId"] == received["conversationId"]
        assert draft["toRecipients"] == [{"emailAddress": {"name": "Bob Buyer", "address": "bob@external.test"}}]
        assert "Thanks Bob!" in draft["body"]["content"]
        mime = (await graph.get(f"/me/messages/{draft['id']}/$value")).content
        parsed = email.message_from_bytes(mime, policy=email.policy.default)
        assert parsed["In-Reply-To"] == "<q1@external.test>"
        assert parsed["References"].split() == ["<root@external.test>", "<q1@external.test>"]
        assert (await graph.post(f"/me/messages/{draft['id']}/send")).status_code == 202
        # reply (send at once) to the same message also lands in the conversation
        assert (await graph.post(f"/me/messages/{received['id']}/reply", json={"comment": "One more thing"})).status_code == 202
    sent = _messages(control, alice.address, "sent")
    assert len(sent) == 2 and {m["conversationId"] for m in sent} == {received["conversationId"]}
    assert all(m["inReplyTo"] == "<q1@external.test>" for m in sent)


async def test_owner_send_reply_and_delivery_between_mailboxes(outlook, control):
    alice = outlook()
    control.post("/mailboxes", json={"provider": "outlook", "address": "carol@contoso.test", "name": "Carol"})
    first = control.post(f"/mailboxes/{alice.address}/send",
                         json={"to": ["Carol <carol@contoso.test>"], "subject": "Lunch", "text": "Noon?"}).json()
    carol_copy = _messages(control, "carol@contoso.test", "inbox")[0]
    assert carol_copy["internetMessageId"] == first["internetMessageId"] and carol_copy["isRead"] is False
    answer = control.post("/mailboxes/carol@contoso.test/send", json={"reply_to": carol_copy["id"], "text": "Yes"}).json()
    assert answer["subject"] == "RE: Lunch" and answer["to"][0]["address"] == alice.address
    assert answer["conversationId"] == carol_copy["conversationId"]
    alice_inbox = _messages(control, alice.address, "inbox")
    assert alice_inbox[0]["conversationId"] == first["conversationId"]  # threaded by In-Reply-To
    assert alice_inbox[0]["references"] == [first["internetMessageId"]]


async def test_patch_read_state_and_sent_message_rules(outlook, control):
    alice = outlook()
    received = _inbound(control, alice.address)
    async with alice.graph(**IMMUTABLE) as graph:
        before = (await graph.get(f"/me/messages/{received['id']}")).json()
        patched = await graph.patch(f"/me/messages/{received['id']}", json={"isRead": "true"})
        assert patched.status_code == 200 and patched.json()["isRead"] is True
        assert patched.json()["changeKey"] != before["changeKey"] and patched.json()["@odata.etag"] != before["@odata.etag"]
        refused = await graph.patch(f"/me/messages/{received['id']}", json={"subject": "changed"})
        assert refused.status_code == 400
        assert (await graph.delete(f"/me/messages/{received['id']}")).status_code == 204
        assert (await graph.get(f"/me/messages/{received['id']}")).status_code == 404
    assert _messages(control, alice.address) == []


async def test_attachments_endpoints_and_raw_inbound(outlook, control):
    alice = outlook()
    raw = (SAMPLES / "nylas_raw_message_with_filename_attachment.eml").read_bytes()
    stored = control.post(f"/mailboxes/{alice.address}/inbound", json={"raw": base64.b64encode(raw).decode()}).json()
    assert stored["attachments"][0]["filename"] == "bewerbung_anschreiben_positivbeispiel.txt"
    async with alice.graph(**IMMUTABLE) as graph:
        listed = (await graph.get(f"/me/messages/{stored['id']}/attachments")).json()["value"]
        assert listed[0]["@odata.type"] == "#microsoft.graph.fileAttachment" and listed[0]["name"].endswith(".txt")
        one = (await graph.get(f"/me/messages/{stored['id']}/attachments/{listed[0]['id']}")).json()
        value = await graph.get(f"/me/messages/{stored['id']}/attachments/{listed[0]['id']}/$value")
        assert base64.b64decode(one["contentBytes"]) == value.content and one["size"] == len(value.content)
        mime = (await graph.get(f"/me/messages/{stored['id']}/$value")).content
        assert mime.endswith(raw) or raw in mime  # stored as received


@pytest.mark.parametrize("sample", ["nylas_raw_message.eml", "nylas_raw_message_with_bad_attachment.eml",
                                    "nylas_raw_message_with_long_message_id.eml", "nylas_raw_message_with_many_recipients.eml",
                                    "nylas_raw_message_with_outlook_emoji.eml"])
async def test_tricky_raw_mail_is_accepted(outlook, control, sample):
    alice = outlook()
    raw = (SAMPLES / sample).read_text(errors="replace")
    response = control.post(f"/mailboxes/{alice.address}/inbound", json={"raw": raw})
    assert response.status_code == 201, response.text
    async with alice.graph() as graph:
        listed = (await graph.get("/me/messages")).json()["value"]
        assert len(listed) == 1 and listed[0]["internetMessageId"].startswith("<")


async def test_every_message_shape_has_the_sample_keys(outlook, control):
    sample_keys = set(json.loads(_sample("graph_message.json")))
    alice = outlook()
    received = _inbound(control, alice.address, html="<p>Hello</p>")
    async with alice.graph(**IMMUTABLE) as graph:
        shapes = {
            "get": (await graph.get(f"/me/messages/{received['id']}")).json(),
            "createReply": (await graph.post(f"/me/messages/{received['id']}/createReply", json={})).json(),
            "create": (await graph.post("/me/messages", json={"subject": "x"})).json(),
            "patch": (await graph.patch(f"/me/messages/{received['id']}", json={"isRead": True})).json(),
        }
        shapes["list"] = (await graph.get("/me/messages")).json()["value"][0]
        shapes["delta"] = (await graph.get("/me/mailFolders/inbox/messages/delta")).json()["value"][0]
    for name, shape in shapes.items():
        keys = set(shape) | ({"@odata.context"} if name in ("list", "delta") else set())
        assert sample_keys <= keys, (name, sample_keys - keys)
        assert set(shape["body"]) == {"contentType", "content"}
        assert shape["createdDateTime"].endswith("Z")
        if shape["from"]:
            assert set(shape["from"]["emailAddress"]) == {"name", "address"}


async def test_batch(outlook, control):
    alice = outlook()
    received = _inbound(control, alice.address)
    async with alice.graph(**IMMUTABLE) as graph:
        batch = {"requests": [
            {"id": "1", "method": "GET", "url": "/me"},
            {"id": "2", "method": "PATCH", "url": f"/me/messages/{received['id']}", "body": {"isRead": True},
             "headers": {"Content-Type": "application/json"}},
            {"id": "3", "dependsOn": ["2"], "method": "GET", "url": f"/me/messages/{received['id']}?$select=isRead"},
            {"id": "4", "method": "GET", "url": "/me/messages/does-not-exist"},
            {"id": "5", "dependsOn": ["4"], "method": "GET", "url": "/me"},
        ]}
        result = (await graph.post("/$batch", json=batch)).json()["responses"]
        by_id = {r["id"]: r for r in result}
        assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["mail"] == alice.address
        assert by_id["3"]["body"]["isRead"] is True
        assert by_id["4"]["status"] == 404 and by_id["5"]["status"] == 424
        too_many = {"requests": [{"id": str(i), "method": "GET", "url": "/me"} for i in range(21)]}
        assert (await graph.post("/$batch", json=too_many)).status_code == 400


async def test_bulk_inbound_and_control_folders(outlook, control):
    alice = outlook()
    seeded = control.post(f"/mailboxes/{alice.address}/inbound/bulk", json={"messages": [
        {"from": "bob@external.test", "subject": f"s{i}", "text": "x"} for i in range(25)]})
    assert seeded.status_code == 201 and len(seeded.json()) == 25
    control.post(f"/mailboxes/{alice.address}/send", json={"to": "bob@external.test", "subject": "out", "text": "x"})
    async with alice.graph() as graph:
        created = await graph.post("/me/messages", json={"subject": "draft"})
        assert created.status_code == 201
        folders = {f["displayName"]: f for f in (await graph.get("/me/mailFolders")).json()["value"]}
    assert folders["Inbox"]["totalItemCount"] == 25 and folders["Inbox"]["unreadItemCount"] == 25
    assert [m["subject"] for m in _messages(control, alice.address, "sent")] == ["out"]
    assert [m["subject"] for m in _messages(control, alice.address, "drafts")] == ["draft"]
    assert control.get(f"/mailboxes/{alice.address}/messages?folder=nope").status_code == 400


async def test_reply_draft_takes_our_message_id_and_body(outlook, control):
    alice = outlook()
    control.post("/mailboxes", json={"provider": "outlook", "address": "bob@contoso.test", "name": "Bob"})
    received = _inbound(control, alice.address, **{"from": "Bob <bob@contoso.test>"})
    async with alice.graph(**IMMUTABLE) as graph:
        draft = (await graph.post(f"/me/messages/{received['id']}/createReply", json={})).json()
        patch = {"internetMessageId": "<crm-42@emailsync.test>", "body": {"contentType": "html", "content": "<p>Our text</p>"},
                 "toRecipients": [{"emailAddress": {"address": "bob@contoso.test"}}], "from": {"emailAddress": {"address": alice.address}}}
        patched = await graph.patch(f"/me/messages/{draft['id']}", json=patch)
        assert patched.status_code == 200, patched.text
        assert patched.json()["internetMessageId"] == "<crm-42@emailsync.test>"
        spoof = await graph.patch(f"/me/messages/{draft['id']}", json={"from": {"emailAddress": {"address": "ceo@contoso.test"}}})
        assert spoof.status_code == 403
        assert (await graph.post(f"/me/messages/{draft['id']}/send")).status_code == 202
        found = (await graph.get("/me/messages", params={"$filter": "internetMessageId eq '<crm-42@emailsync.test>'"})).json()["value"]
        assert [m["id"] for m in found] == [draft["id"]] and found[0]["conversationId"] == received["conversationId"]
        frozen = await graph.patch(f"/me/messages/{draft['id']}", json={"internetMessageId": "<other@x.test>"})
        assert frozen.status_code == 400
    (bob_copy,) = _messages(control, "bob@contoso.test", "inbox")
    assert bob_copy["internetMessageId"] == "<crm-42@emailsync.test>" and bob_copy["inReplyTo"] == received["internetMessageId"]
    assert "Our text" in bob_copy["html"]
