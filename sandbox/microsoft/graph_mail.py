"""Graph mail endpoints under /v1.0: the user, messages, drafts, replies, sending,
attachments and MIME. Delta and subscriptions live in their own modules."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import mailflow, mime
from sandbox.context import Sandbox
from sandbox.microsoft import graph_input as gin
from sandbox.microsoft.graph_common import GraphCall, GraphError, graph_endpoint
from sandbox.microsoft.graph_views import (
    attachment_json,
    collection_context,
    entity_context,
    folder_json,
    message_json,
)
from sandbox.store import FOLDERS, Message


def render(call: GraphCall, message: Message, select: list[str] | None = None) -> dict[str, Any]:
    """Graph JSON of a message, honouring the body-content-type preference and $expand."""
    prefer_text = call.prefs.get("outlook.body-content-type", "").lower() == "text"
    if prefer_text:
        call.applied.append('outlook.body-content-type="text"')
    body = message_json(message, call.mailbox, call.message_id(message), select=select, prefer_text=prefer_text)
    if (call.request.query_params.get("$expand") or "").lower() == "attachments":
        body["attachments"] = [attachment_json(a) for a in message.attachments]
    return body


def entity(call: GraphCall, message: Message, status: int = 200) -> JSONResponse:
    select = call.select()
    body = {"@odata.context": entity_context(call.base, call.mailbox.user_id, select), **render(call, message, select)}
    return JSONResponse(body, status_code=status)


async def get_me(call: GraphCall) -> Response:
    mailbox = call.mailbox
    given, _, surname = mailbox.name.partition(" ")
    return JSONResponse(
        {
            "@odata.context": f"{call.base}/$metadata#users/$entity",
            "businessPhones": [],
            "displayName": mailbox.name,
            "givenName": given,
            "jobTitle": None,
            "mail": mailbox.address,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": "en-US",
            "surname": surname or None,
            "userPrincipalName": mailbox.address,
            "id": mailbox.user_id,
        }
    )


def folder_of(call: GraphCall) -> str:
    name = call.mailbox.folder_name(call.request.path_params["folder"])
    if name is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    return name


async def list_folders(call: GraphCall) -> Response:
    folders = [folder_json(call.mailbox, f, call.base) for f in FOLDERS]
    return JSONResponse({"@odata.context": f"{call.base}/$metadata#users('{call.mailbox.user_id}')/mailFolders", "value": folders})


async def get_folder(call: GraphCall) -> Response:
    body = folder_json(call.mailbox, folder_of(call), call.base)
    return JSONResponse({"@odata.context": f"{call.base}/$metadata#users('{call.mailbox.user_id}')/mailFolders/$entity", **body})


_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+('(?:[^']|'')*'|true|false)\s*$", re.I)
_FILTERABLE = {
    "internetmessageid": lambda m, call: m.internet_message_id,
    "conversationid": lambda m, call: m.conversation_id,
    "subject": lambda m, call: m.subject,
    "isread": lambda m, call: m.is_read,
    "isdraft": lambda m, call: m.is_draft,
    "parentfolderid": lambda m, call: call.mailbox.folder_ids[m.folder],
}


def apply_filter(call: GraphCall, messages: list[Message], expression: str) -> list[Message]:
    """The subset of OData $filter the adapters need: `prop eq value` joined by `and`."""
    for clause in re.split(r"\s+and\s+", expression.strip(), flags=re.I):
        match = _CLAUSE.match(clause)
        if not match or match.group(1).lower() not in _FILTERABLE:
            raise GraphError(400, "BadRequest", f"Invalid filter clause (unsupported by the sandbox): {clause}")
        getter = _FILTERABLE[match.group(1).lower()]
        raw = match.group(2)
        wanted: Any = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw.lower() == "true"
        if isinstance(wanted, str):
            messages = [m for m in messages if str(getter(m, call)).lower() == wanted.lower()]
        else:
            messages = [m for m in messages if getter(m, call) is wanted]
    return messages


async def list_messages(call: GraphCall) -> Response:
    params = call.request.query_params
    folder = folder_of(call) if "folder" in call.request.path_params else None
    messages = [m for m in call.mailbox.messages.values() if folder is None or m.folder == folder]
    if params.get("$filter"):
        messages = apply_filter(call, messages, params["$filter"])
    messages.sort(key=lambda m: m.received or m.created, reverse=True)
    try:
        top = min(int(params.get("$top", "10")), 1000)
        skip = int(params.get("$skip", "0"))
    except ValueError:
        raise GraphError(400, "BadRequest", "$top and $skip must be integers.") from None
    top = call.page_size(top) if "$top" not in params else top
    select = call.select()
    page = messages[skip : skip + top]
    body: dict[str, Any] = {
        "@odata.context": collection_context(call.base, call.mailbox.user_id, select),
        "value": [render(call, m, select) for m in page],
    }
    if skip + top < len(messages):
        query = {k: v for k, v in params.items() if k != "$skip"}
        query["$skip"] = str(skip + top)
        query.setdefault("$top", str(top))
        body["@odata.nextLink"] = str(call.request.url.replace_query_params(**query))
    return JSONResponse(body)


async def get_message(call: GraphCall) -> Response:
    return entity(call, call.find_message(call.request.path_params["message_id"]))


async def get_mime(call: GraphCall) -> Response:
    message = call.find_message(call.request.path_params["message_id"])
    return Response(message.mime, media_type="text/plain")


async def create_message(call: GraphCall) -> Response:
    data = await call.json()
    draft = mailflow.create_draft(call.sandbox.store, call.mailbox, gin.outgoing(call.mailbox, data))
    return entity(call, draft, 201)


async def patch_message(call: GraphCall) -> Response:
    message = call.find_message(call.request.path_params["message_id"])
    values = gin.patch_values(await call.json(), message.is_draft, call.mailbox.address)
    if message.is_draft and set(values) - {"is_read", "categories", "flag_status", "importance"}:
        mailflow.update_draft(call.sandbox.store, call.mailbox, message, **values)
    elif values:
        call.sandbox.store.update_message(call.mailbox, message, **values)
    return entity(call, message)


async def delete_message(call: GraphCall) -> Response:
    message = call.find_message(call.request.path_params["message_id"])
    call.sandbox.store.delete_message(call.mailbox, message)
    return Response(status_code=204)


async def move_message(call: GraphCall) -> Response:
    message = call.find_message(call.request.path_params["message_id"])
    destination = str((await call.json()).get("destinationId") or "")
    folder = call.mailbox.folder_name(destination)
    if folder is None:
        raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
    call.sandbox.store.update_message(call.mailbox, message, folder=folder)
    return entity(call, message, 201)


def send_checked(call: GraphCall, draft: Message) -> None:
    if not draft.is_draft:
        raise GraphError(400, "ErrorInvalidOperation", "Only draft messages can be sent.")
    if not (draft.to or draft.cc or draft.bcc):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is required, but none were found.")
    mailflow.send_draft(call.sandbox.store, call.mailbox, draft)


async def send_message(call: GraphCall) -> Response:
    send_checked(call, call.find_message(call.request.path_params["message_id"]))
    return Response(status_code=202)


async def _reply_draft(call: GraphCall, reply_all: bool) -> Message:
    original = call.find_message(call.request.path_params["message_id"])
    data = await call.json()
    comment = str(data.get("comment") or "")
    draft = mailflow.create_reply_draft(call.sandbox.store, call.mailbox, original, comment, reply_all=reply_all)
    overrides = {k: v for k, v in (data.get("message") or {}).items() if k in gin.DRAFT_FIELDS and k != "body"}
    if overrides:
        mailflow.update_draft(call.sandbox.store, call.mailbox, draft, **gin.patch_values(overrides, True, call.mailbox.address))
    attachments = gin.attachments(call.mailbox, (data.get("message") or {}).get("attachments"))
    if attachments:
        mailflow.update_draft(call.sandbox.store, call.mailbox, draft, attachments=[*draft.attachments, *attachments])
    return draft


async def create_reply(call: GraphCall) -> Response:
    return entity(call, await _reply_draft(call, reply_all=False), 201)


async def create_reply_all(call: GraphCall) -> Response:
    return entity(call, await _reply_draft(call, reply_all=True), 201)


async def reply(call: GraphCall) -> Response:
    send_checked(call, await _reply_draft(call, reply_all=False))
    return Response(status_code=202)


async def reply_all(call: GraphCall) -> Response:
    send_checked(call, await _reply_draft(call, reply_all=True))
    return Response(status_code=202)


async def _checked_body(call: GraphCall) -> bytes:
    raw = await call.request.body()
    if len(raw) > gin.MAX_REQUEST_BYTES:
        raise GraphError(413, "RequestBodyTooLarge", "The maximum request length supported is 4MB; use an upload session for large attachments.")
    return raw


async def send_mail(call: GraphCall) -> Response:
    raw = await _checked_body(call)
    content_type = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
    store, mailbox = call.sandbox.store, call.mailbox
    if content_type == "text/plain":
        try:
            decoded = base64.b64decode(b"".join(raw.split()), validate=True)
        except (binascii.Error, ValueError):
            raise GraphError(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.") from None
        mail = _outgoing_from_mime(call, decoded)
        mailflow.send(store, mailbox, mail)
        return Response(status_code=202)
    data = await call.json()
    message = data.get("message")
    if not isinstance(message, dict):
        raise GraphError(400, "ErrorInvalidParameter", "The 'message' parameter is required.")
    save = gin.as_bool(data.get("saveToSentItems", True), "saveToSentItems")
    mail = gin.outgoing(mailbox, message)
    if not (mail.to or mail.cc or mail.bcc):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is required, but none were found.")
    mailflow.send(store, mailbox, mail, save_to_sent=save)
    return Response(status_code=202)


def _outgoing_from_mime(call: GraphCall, raw: bytes) -> mailflow.Outgoing:
    parsed = mime.parse(raw)
    if not (parsed.to or parsed.cc or parsed.bcc):
        raise GraphError(400, "ErrorMimeContentInvalid", "The MIME content has no recipients.")
    return mailflow.Outgoing(
        to=parsed.to, cc=parsed.cc, bcc=parsed.bcc, reply_to=parsed.reply_to, subject=parsed.subject,
        html=parsed.html, text=parsed.text, in_reply_to=parsed.in_reply_to, references=parsed.references,
        custom_headers=parsed.custom_headers, internet_message_id=parsed.message_id,
        attachments=[
            mailflow.new_attachment(call.mailbox, a.filename, a.content_type, a.data, content_id=a.content_id, is_inline=a.is_inline)
            for a in parsed.attachments
        ],
    )


def _attachment_of(call: GraphCall) -> tuple[Message, Any]:
    message = call.find_message(call.request.path_params["message_id"])
    att = message.attachment(call.request.path_params["attachment_id"])
    if att is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    return message, att


async def list_attachments(call: GraphCall) -> Response:
    message = call.find_message(call.request.path_params["message_id"])
    context = f"{call.base}/$metadata#users('{call.mailbox.user_id}')/messages('{call.message_id(message)}')/attachments"
    return JSONResponse({"@odata.context": context, "value": [attachment_json(a) for a in message.attachments]})


async def get_attachment(call: GraphCall) -> Response:
    message, att = _attachment_of(call)
    context = f"{call.base}/$metadata#users('{call.mailbox.user_id}')/messages('{call.message_id(message)}')/attachments/$entity"
    return JSONResponse({"@odata.context": context, **attachment_json(att)})


async def get_attachment_value(call: GraphCall) -> Response:
    _, att = _attachment_of(call)
    return Response(att.data, media_type=att.content_type)


async def add_attachment(call: GraphCall) -> Response:
    await _checked_body(call)
    message = call.find_message(call.request.path_params["message_id"])
    if not message.is_draft:
        raise GraphError(400, "ErrorInvalidOperation", "Attachments can only be added to drafts.")
    new = gin.attachments(call.mailbox, [await call.json()])
    mailflow.update_draft(call.sandbox.store, call.mailbox, message, attachments=[*message.attachments, *new])
    return JSONResponse(attachment_json(new[0]), status_code=201)


async def delete_attachment(call: GraphCall) -> Response:
    message, att = _attachment_of(call)
    if not message.is_draft:
        raise GraphError(400, "ErrorInvalidOperation", "Attachments can only be removed from drafts.")
    remaining = [a for a in message.attachments if a.id != att.id]
    mailflow.update_draft(call.sandbox.store, call.mailbox, message, attachments=remaining)
    return Response(status_code=204)


def routes(sandbox: Sandbox) -> list[Route]:
    def r(path: str, handler: Any, *methods: str) -> Route:
        return Route("/v1.0" + path, graph_endpoint(sandbox, handler), methods=list(methods))

    msg = "/me/messages/{message_id}"
    return [
        r("/me", get_me, "GET"),
        r("/me/mailFolders", list_folders, "GET"),
        r("/me/mailFolders/{folder}", get_folder, "GET"),
        r("/me/mailFolders/{folder}/messages", list_messages, "GET"),
        r("/me/messages", list_messages, "GET"),
        r("/me/messages", create_message, "POST"),
        r("/me/sendMail", send_mail, "POST"),
        r(msg, get_message, "GET"),
        r(msg, patch_message, "PATCH"),
        r(msg, delete_message, "DELETE"),
        r(msg + "/$value", get_mime, "GET"),
        r(msg + "/send", send_message, "POST"),
        r(msg + "/move", move_message, "POST"),
        r(msg + "/createReply", create_reply, "POST"),
        r(msg + "/createReplyAll", create_reply_all, "POST"),
        r(msg + "/reply", reply, "POST"),
        r(msg + "/replyAll", reply_all, "POST"),
        r(msg + "/attachments", list_attachments, "GET"),
        r(msg + "/attachments", add_attachment, "POST"),
        r(msg + "/attachments/{attachment_id}", get_attachment, "GET"),
        r(msg + "/attachments/{attachment_id}", delete_attachment, "DELETE"),
        r(msg + "/attachments/{attachment_id}/$value", get_attachment_value, "GET"),
    ]
