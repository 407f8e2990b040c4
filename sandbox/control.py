"""The control API under ``/_sandbox``: plain JSON, no auth.

Tests, benchmarks and the demo use it to set the world up (mailboxes, mail
arriving, the owner acting in their mail client) and to make the providers
misbehave on purpose (revoked consent, expired tokens and cursors, replayed
pages, injected faults). Provider-specific controls (Graph subscriptions) are
contributed by the provider packages and mounted beside these.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import ids, mailflow, mime
from sandbox.context import Sandbox
from sandbox.mailflow import Outgoing
from sandbox.store import PROVIDERS, Address, Mailbox, Message


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _address(value: Any) -> Address:
    if isinstance(value, dict) and value.get("address"):
        return Address(address=str(value["address"]), name=str(value.get("name") or ""))
    if isinstance(value, str) and "@" in value:
        name, addr = email.utils.parseaddr(value)
        if addr:
            return Address(address=addr, name=name)
    raise ControlError(400, f"not an email address: {value!r}")


def _addresses(value: Any) -> list[Address]:
    if value is None:
        return []
    return [_address(v) for v in (value if isinstance(value, list) else [value])]


def _attachments(mailbox: Mailbox, value: Any) -> list[Any]:
    result = []
    for entry in value or []:
        try:
            data = base64.b64decode(str(entry.get("content_base64", "")), validate=True)
        except (binascii.Error, ValueError, AttributeError):
            raise ControlError(400, "attachments need filename, content_type and valid content_base64") from None
        result.append(
            mailflow.new_attachment(
                mailbox, str(entry.get("filename") or "attachment"),
                str(entry.get("content_type") or "application/octet-stream"), data,
                content_id=entry.get("content_id"), is_inline=bool(entry.get("inline", False)),
            )
        )
    return result


def _references(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def message_summary(mailbox: Mailbox, message: Message) -> dict[str, Any]:
    def people(items: list[Address]) -> list[dict[str, str]]:
        return [{"address": a.address, "name": a.name} for a in items]

    return {
        "id": message.id,
        "restId": message.rest_id,
        "mailbox": mailbox.address,
        "folder": message.folder,
        "labels": sorted(message.labels),
        "conversationId": message.conversation_id,
        "internetMessageId": message.internet_message_id,
        "inReplyTo": message.in_reply_to,
        "references": list(message.references),
        "subject": message.subject,
        "from": people([message.from_])[0] if message.from_ else None,
        "to": people(message.to),
        "cc": people(message.cc),
        "bcc": people(message.bcc),
        "isRead": message.is_read,
        "isDraft": message.is_draft,
        "bodyPreview": mime.preview(message.body_text, message.body_html),
        "text": message.body_text,
        "html": message.body_html,
        "attachments": [
            {"id": a.id, "filename": a.filename, "contentType": a.content_type, "size": len(a.data), "inline": a.is_inline}
            for a in message.attachments
        ],
        "sentDateTime": ids.iso_z(message.sent),
        "receivedDateTime": ids.iso_z(message.received),
    }


class Control:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def mailbox(self, request: Request) -> Mailbox:
        mailbox = self.sandbox.store.mailbox(request.path_params["address"])
        if mailbox is None:
            raise ControlError(404, f"no mailbox {request.path_params['address']}")
        return mailbox

    def message(self, request: Request) -> tuple[Mailbox, Message]:
        mailbox = self.mailbox(request)
        message = mailbox.get(request.path_params["message_id"])
        if message is None:
            raise ControlError(404, f"no message {request.path_params['message_id']} in {mailbox.address}")
        return mailbox, message

    # -- mailboxes ------------------------------------------------------------
    async def create_mailbox(self, request: Request) -> Response:
        data = await _json(request)
        provider, address = data.get("provider"), data.get("address")
        if provider not in PROVIDERS or not isinstance(address, str) or "@" not in address:
            raise ControlError(400, f"need provider in {PROVIDERS} and an address")
        mailbox, created = self.sandbox.store.create_mailbox(provider, address, str(data.get("name") or ""))
        return JSONResponse(mailbox.to_summary(), status_code=201 if created else 200)

    async def list_mailboxes(self, request: Request) -> Response:
        return JSONResponse([m.to_summary() for m in self.sandbox.store.mailboxes(request.query_params.get("provider"))])

    async def get_mailbox(self, request: Request) -> Response:
        mailbox = self.mailbox(request)
        return JSONResponse({**mailbox.to_summary(), **self.sandbox.tokens.count_for(mailbox.address)})

    async def inbound(self, request: Request) -> Response:
        mailbox = self.mailbox(request)
        message = self._receive(mailbox, await _json(request))
        return JSONResponse(message_summary(mailbox, message), status_code=201)

    async def inbound_bulk(self, request: Request) -> Response:
        """Many inbound messages in one call (seeding large mailboxes for benchmarks)."""
        mailbox = self.mailbox(request)
        specs = (await _json(request)).get("messages")
        if not isinstance(specs, list):
            raise ControlError(400, "need 'messages': [inbound message, ...]")
        received = [self._receive(mailbox, spec if isinstance(spec, dict) else {}) for spec in specs]
        return JSONResponse(
            [{"id": m.id, "internetMessageId": m.internet_message_id, "conversationId": m.conversation_id} for m in received],
            status_code=201,
        )

    def _receive(self, mailbox: Mailbox, data: dict[str, Any]) -> Message:
        store = self.sandbox.store
        if data.get("raw"):
            message = mailflow.receive_raw(store, mailbox, _raw_bytes(str(data["raw"])))
        else:
            if not data.get("from"):
                raise ControlError(400, "inbound mail needs 'from' (or 'raw')")
            mail = Outgoing(
                from_=_address(data["from"]),
                to=_addresses(data.get("to")) or [mailflow.owner(mailbox)],
                cc=_addresses(data.get("cc")),
                reply_to=_addresses(data.get("reply_to_addresses")),
                subject=str(data.get("subject") or ""),
                text=data.get("text"),
                html=data.get("html"),
                in_reply_to=data.get("in_reply_to"),
                references=_references(data.get("references")),
                attachments=_attachments(mailbox, data.get("attachments")),
                internet_message_id=data.get("message_id"),
            )
            if mail.text is None and mail.html is None:
                mail.text = ""
            message = mailflow.receive(store, mailbox, mail)
        return message

    async def owner_send(self, request: Request) -> Response:
        mailbox = self.mailbox(request)
        data = await _json(request)
        mail = Outgoing(
            to=_addresses(data.get("to")), cc=_addresses(data.get("cc")), bcc=_addresses(data.get("bcc")),
            subject=str(data.get("subject") or ""), text=data.get("text"), html=data.get("html"),
            attachments=_attachments(mailbox, data.get("attachments")),
        )
        if data.get("reply_to"):
            original = mailbox.get(str(data["reply_to"]))
            if original is None:
                raise ControlError(404, f"no message {data['reply_to']} to reply to")
            defaults = mailflow.reply_outgoing(mailbox, original)
            mail.to = mail.to or defaults.to
            mail.subject = mail.subject or defaults.subject
            mail.in_reply_to, mail.references = defaults.in_reply_to, defaults.references
        if not (mail.to or mail.cc or mail.bcc):
            raise ControlError(400, "need at least one recipient")
        if mail.text is None and mail.html is None:
            mail.text = ""
        sent = mailflow.send(self.sandbox.store, mailbox, mail)
        return JSONResponse(message_summary(mailbox, sent), status_code=201)

    async def list_messages(self, request: Request) -> Response:
        mailbox = self.mailbox(request)
        folder_ref = request.query_params.get("folder")
        folder = mailbox.folder_name(folder_ref) if folder_ref else None
        if folder_ref and folder is None:
            raise ControlError(400, f"unknown folder {folder_ref}")
        messages = [m for m in mailbox.messages.values() if folder is None or m.folder == folder]
        messages.sort(key=lambda m: m.received or m.created)
        return JSONResponse([message_summary(mailbox, m) for m in messages])

    async def get_message(self, request: Request) -> Response:
        mailbox, message = self.message(request)
        return JSONResponse({**message_summary(mailbox, message), "mime": message.mime.decode("utf-8", "replace")})

    async def patch_message(self, request: Request) -> Response:
        mailbox, message = self.message(request)
        data = await _json(request)
        values: dict[str, Any] = {}
        if "isRead" in data:
            values["is_read"] = bool(data["isRead"])
        if "folder" in data:
            folder = mailbox.folder_name(str(data["folder"]))
            if folder is None:
                raise ControlError(400, f"unknown folder {data['folder']}")
            values["folder"] = folder
        if "labels" in data:
            values["labels"] = set(data["labels"])
        self.sandbox.store.update_message(mailbox, message, **values)
        return JSONResponse(message_summary(mailbox, message))

    async def delete_message(self, request: Request) -> Response:
        mailbox, message = self.message(request)
        if request.query_params.get("to_trash", "").lower() in ("1", "true"):
            self.sandbox.store.update_message(mailbox, message, folder="deleteditems")
        else:
            self.sandbox.store.delete_message(mailbox, message)
        return Response(status_code=204)

    # -- misbehaviour ---------------------------------------------------------
    async def revoke(self, request: Request) -> Response:
        mailbox = self.mailbox(request)
        self.sandbox.tokens.revoke_mailbox(mailbox.address)
        self.sandbox.store.mailbox_event(mailbox, "revoked")
        return JSONResponse(mailbox.to_summary())

    async def expire_tokens(self, request: Request) -> Response:
        mailbox = self.mailbox(request)
        count = self.sandbox.tokens.expire_access(mailbox.address)
        self.sandbox.store.mailbox_event(mailbox, "tokens_expired")
        return JSONResponse({"expired": count})

    async def expire_cursors(self, request: Request) -> Response:
        mailbox = self.mailbox(request)
        self.sandbox.store.mailbox_event(mailbox, "cursors_expired")
        return JSONResponse({"cursorFloor": mailbox.cursor_floor})

    async def replay_next(self, request: Request) -> Response:
        mailbox = self.mailbox(request)
        mailbox.replay_next_page = True
        return JSONResponse({"replayNextPage": True})

    async def add_fault(self, request: Request) -> Response:
        data = await _json(request)
        if not isinstance(data.get("path"), str) or not data["path"]:
            raise ControlError(400, "a fault needs a path (substring or regex)")
        count = data.get("count", 1)
        fault = self.sandbox.faults.add(
            status=int(data.get("status", 0) or 0),
            path=data["path"],
            method=data.get("method"),
            count=None if count in (None, -1) else int(count),
            retry_after=None if data.get("retry_after") is None else str(data["retry_after"]),
            body=data.get("body"),
            delay_ms=int(data.get("delay_ms", 0) or 0),
        )
        return JSONResponse({"id": fault.id}, status_code=201)

    async def list_faults(self, request: Request) -> Response:
        return JSONResponse([f.__dict__ for f in self.sandbox.faults.faults])

    async def clear_faults(self, request: Request) -> Response:
        self.sandbox.faults.clear()
        return Response(status_code=204)

    async def requests(self, request: Request) -> Response:
        q = request.query_params
        return JSONResponse(self.sandbox.requests.to_list(q.get("mailbox"), q.get("path")))

    async def clear_requests(self, request: Request) -> Response:
        self.sandbox.requests.clear()
        return Response(status_code=204)

    def _config_sections(self) -> list[Any]:
        # Provider packages add their own settings objects (same update/to_dict API).
        return [self.sandbox.config, *self.sandbox.extensions.get("config_sections", [])]

    def _config(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for section in self._config_sections():
            merged.update(section.to_dict())
        return merged

    async def get_config(self, request: Request) -> Response:
        return JSONResponse(self._config())

    async def patch_config(self, request: Request) -> Response:
        data = await _json(request)
        sections = self._config_sections()
        unknown = [key for key in data if not any(key in section.to_dict() for section in sections)]
        if unknown:
            raise ControlError(400, f"unknown settings: {unknown}")
        for section in sections:
            known = section.to_dict()
            section.update({key: value for key, value in data.items() if key in known})
        return JSONResponse(self._config())

    async def register_client(self, request: Request) -> Response:
        data = await _json(request)
        if not data.get("client_id") or not data.get("client_secret"):
            raise ControlError(400, "need client_id and client_secret")
        self.sandbox.tokens.register_client(str(data["client_id"]), str(data["client_secret"]))
        return JSONResponse({"client_id": data["client_id"]}, status_code=201)

    async def reset(self, request: Request) -> Response:
        self.sandbox.reset()
        return Response(status_code=204)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = await request.json() if (await request.body()).strip() else {}
    except ValueError:
        raise ControlError(400, "body must be JSON") from None
    if not isinstance(data, dict):
        raise ControlError(400, "body must be a JSON object")
    return data


def _raw_bytes(raw: str) -> bytes:
    """`raw` may be RFC 5322 text or its base64 (standard or URL-safe)."""
    if "\n" not in raw.strip() or ":" not in raw:
        compact = "".join(raw.split())
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decoder(compact + "=" * (-len(compact) % 4))
            except (binascii.Error, ValueError):
                continue
            if b":" in decoded:
                return decoded
    return raw.encode("utf-8")


def wrap(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ControlError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)

    return endpoint


def routes(sandbox: Sandbox, extra: list[tuple[str, Any, list[str]]] | None = None) -> list[BaseRoute]:
    c = Control(sandbox)
    mb, msg = "/_sandbox/mailboxes/{address}", "/_sandbox/mailboxes/{address}/messages/{message_id}"
    table: list[tuple[str, Any, list[str]]] = [
        ("/_sandbox/health", c.health, ["GET"]),
        ("/_sandbox/mailboxes", c.create_mailbox, ["POST"]),
        ("/_sandbox/mailboxes", c.list_mailboxes, ["GET"]),
        (mb, c.get_mailbox, ["GET"]),
        (mb + "/inbound", c.inbound, ["POST"]),
        (mb + "/inbound/bulk", c.inbound_bulk, ["POST"]),
        (mb + "/send", c.owner_send, ["POST"]),
        (mb + "/messages", c.list_messages, ["GET"]),
        (msg, c.get_message, ["GET"]),
        (msg, c.patch_message, ["PATCH"]),
        (msg, c.delete_message, ["DELETE"]),
        (mb + "/revoke", c.revoke, ["POST"]),
        (mb + "/expire-tokens", c.expire_tokens, ["POST"]),
        (mb + "/expire-cursors", c.expire_cursors, ["POST"]),
        (mb + "/replay-next-delta", c.replay_next, ["POST"]),
        ("/_sandbox/faults", c.add_fault, ["POST"]),
        ("/_sandbox/faults", c.list_faults, ["GET"]),
        ("/_sandbox/faults", c.clear_faults, ["DELETE"]),
        ("/_sandbox/requests", c.requests, ["GET"]),
        ("/_sandbox/requests", c.clear_requests, ["DELETE"]),
        ("/_sandbox/config", c.get_config, ["GET"]),
        ("/_sandbox/config", c.patch_config, ["PATCH"]),
        ("/_sandbox/clients", c.register_client, ["POST"]),
        ("/_sandbox/reset", c.reset, ["POST"]),
        *(extra or []),
    ]
    return [Route(path, wrap(handler), methods=methods) for path, handler, methods in table]
