"""Fixtures for the Gmail adapter's unit tests: the published samples and a small
in-memory Gmail served through ``httpx.MockTransport``.

``FakeGmail`` is written independently of the adapter (it parses batch bodies with
the stdlib ``email`` package, not with the adapter's codec) so the adapter's wire
handling is really exercised. It is handed to tests as a fixture: test modules are
imported with ``--import-mode=importlib`` and cannot import each other.
"""

from __future__ import annotations

import base64
import copy
import email
import email.policy
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest

from sync_engine.domain import TokenSet
from sync_engine.providers.gmail.gmail_client import GmailClient
from tests.support.samples import read_sample_text, sample_loader
from tests.support.sleeps import RecordingSleep

BASE = "https://gmail.test"

UNITS = {"profile": 1, "messages.list": 5, "messages.get": 5, "history": 2, "send": 100, "modify": 5,
         "attachments": 5, "watch": 100, "stop": 50}


@pytest.fixture(scope="session")
def sample():
    return sample_loader()


@pytest.fixture(scope="session")
def sample_text():
    return read_sample_text


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def full_message(mid: str, *, labels=("INBOX", "UNREAD"), subject="Hello", sender="Client <client@example.com>",
                 to="me@gmail.test", text="body", thread=None, message_id=None, extra_headers=()) -> dict[str, Any]:
    headers = [{"name": "From", "value": sender}, {"name": "To", "value": to},
               {"name": "Subject", "value": subject},
               {"name": "Message-ID", "value": message_id or f"<{mid}@mail.example.com>"}, *extra_headers]
    return {
        "id": mid,
        "threadId": thread or f"t-{mid}",
        "labelIds": list(labels),
        "historyId": "1",
        "internalDate": "1700000000000",
        "payload": {"partId": "", "mimeType": "text/plain", "filename": "",
                    "headers": [*headers, {"name": "Content-Type", "value": "text/plain; charset=UTF-8"}],
                    "body": {"size": len(text), "data": b64url(text)}},
        "sizeEstimate": 100,
    }


class FakeGmail:
    """Just enough Gmail for the adapter's unit tests (see the module docstring)."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.history_id = 1000
        self.oldest_history = 0
        self.units = Counter()
        self.calls: list[tuple[str, str]] = []  # (method, path?query) of every HTTP request
        self.batch_sizes: list[int] = []
        self.sent: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []  # {"match", "status", "headers", "body", "count", "in_batch"}
        self.watch_requests: list[dict[str, Any]] = []
        self.attachments: dict[tuple[str, str], bytes] = {}
        self.next_id = 1

    # ---- world building

    def add(self, message: dict[str, Any], *, record: bool = False) -> dict[str, Any]:
        self.messages[message["id"]] = message
        if record:
            self.record({"messagesAdded": [{"message": self._stub(message)}]})
        return message

    def _stub(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"id": message["id"], "threadId": message["threadId"], "labelIds": list(message["labelIds"])}

    def record(self, entry: dict[str, Any]) -> str:
        self.history_id += 7  # not contiguous, like Gmail
        self.history.append({"id": str(self.history_id), **entry})
        return str(self.history_id)

    def delete(self, mid: str) -> None:
        message = self.messages.pop(mid)
        self.record({"messagesDeleted": [{"message": self._stub(message)}]})

    def relabel(self, mid: str, add=(), remove=()) -> None:
        message = self.messages[mid]
        labels = [x for x in message["labelIds"] if x not in remove] + [x for x in add if x not in message["labelIds"]]
        message["labelIds"] = labels
        if add:
            self.record({"labelsAdded": [{"message": self._stub(message), "labelIds": list(add)}]})
        if remove:
            self.record({"labelsRemoved": [{"message": self._stub(message), "labelIds": list(remove)}]})

    def fault(self, match: str, status: int, *, count: int = 1, headers=None, body=None, in_batch: bool | None = False) -> None:
        """Answer requests matching ``match`` (regex on "METHOD path?query") with ``status``:
        outer requests (``in_batch=False``), batch items (``True``) or both (``None``)."""
        self.faults.append({"match": match, "status": status, "count": count, "headers": headers or {},
                            "body": body, "in_batch": in_batch})

    # ---- transport

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _fault_for(self, target: str, in_batch: bool) -> httpx.Response | None:
        for fault in self.faults:
            where = fault["in_batch"]
            if fault["count"] and where in (None, in_batch) and re.search(fault["match"], target):
                fault["count"] -= 1
                body = fault["body"] or {"error": {"code": fault["status"], "message": "injected",
                                                   "errors": [{"reason": "rateLimitExceeded" if fault["status"] in (403, 429) else "backendError"}]}}
                return httpx.Response(fault["status"], json=body, headers=fault["headers"])
        return None

    def handle(self, request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode()
        self.calls.append((request.method, target))
        assert request.headers.get("authorization", "").startswith("Bearer "), "no bearer token"
        injected = self._fault_for(f"{request.method} {target}", in_batch=False)
        if injected is not None:
            return injected
        if request.url.path == "/batch/gmail/v1":
            return self._batch(request)
        if request.url.path == "/upload/gmail/v1/users/me/messages/send":
            return self._upload_send(request)
        return self._route(request.method, target, request.content)

    def _batch(self, request: httpx.Request) -> httpx.Response:
        raw = b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.content
        parsed = email.message_from_bytes(raw, policy=email.policy.HTTP)
        parts = list(parsed.iter_parts())
        self.batch_sizes.append(len(parts))
        assert len(parts) <= 100, "Gmail refuses batches over 100"
        boundary = "batch_fake_boundary"
        out = []
        for part in parts:
            content_id = part["Content-ID"]
            payload = part.get_payload(decode=True).decode()
            method, target = payload.strip().splitlines()[0].split(" ", 1)
            inner = self._fault_for(f"{method} {target}", in_batch=True) or self._route(method, target.split(" ")[0], b"")
            lines = [f"HTTP/1.1 {inner.status_code} X"]
            lines += [f"{k}: {v}" for k, v in inner.headers.items() if k.lower() in ("content-type", "retry-after")]
            out.append(f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{content_id.strip('<>')}>"
                       f"\r\n\r\n" + "\r\n".join(lines) + "\r\n\r\n" + inner.text + "\r\n")
        body = "".join(out) + f"--{boundary}--\r\n"
        return httpx.Response(200, content=body.encode(), headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})

    def _route(self, method: str, target: str, content: bytes) -> httpx.Response:
        split = urlsplit(target)
        path = unquote(split.path)
        query = parse_qsl(split.query)
        params = dict(query)
        prefix = "/gmail/v1/users/me/"
        assert path.startswith(prefix), path
        rest = path[len(prefix):]
        if rest == "profile" and method == "GET":
            self.units["profile"] += 1
            return httpx.Response(200, json={"emailAddress": "me@gmail.test", "historyId": str(self.history_id),
                                             "messagesTotal": len(self.messages)})
        if rest == "messages" and method == "GET":
            self.units["messages.list"] += 1
            return self._list(params, [v for k, v in query if k == "labelIds"])
        if rest == "history" and method == "GET":
            self.units["history"] += 1
            return self._history(params, [v for k, v in query if k == "historyTypes"])
        if rest == "messages/send" and method == "POST":
            self.units["send"] += 1
            return self._send(json.loads(content))
        if rest == "watch" and method == "POST":
            self.units["watch"] += 1
            self.watch_requests.append(json.loads(content))
            expiration = int((datetime.now(UTC) + timedelta(days=7)).timestamp() * 1000)
            return httpx.Response(200, json={"historyId": str(self.history_id), "expiration": str(expiration)})
        if rest == "stop" and method == "POST":
            self.units["stop"] += 1
            return httpx.Response(204)
        m = re.fullmatch(r"messages/([^/]+)/attachments/([^/]+)", rest)
        if m and method == "GET":
            self.units["attachments"] += 1
            data = self.attachments.get((m.group(1), m.group(2)))
            if data is None:
                return self._not_found()
            return httpx.Response(200, json={"size": len(data), "data": b64url(data)})
        m = re.fullmatch(r"messages/([^/]+)/modify", rest)
        if m and method == "POST":
            self.units["modify"] += 1
            if m.group(1) not in self.messages:
                return self._not_found()
            body = json.loads(content)
            self.relabel(m.group(1), add=body.get("addLabelIds", []), remove=body.get("removeLabelIds", []))
            return httpx.Response(200, json=self._stub(self.messages[m.group(1)]))
        m = re.fullmatch(r"messages/([^/]+)", rest)
        if m and method == "GET":
            self.units["messages.get"] += 1
            message = self.messages.get(m.group(1))
            if message is None:
                return self._not_found()
            if params.get("format") == "minimal":
                return httpx.Response(200, json={k: message[k] for k in ("id", "threadId", "labelIds")})
            return httpx.Response(200, json=copy.deepcopy(message))
        raise AssertionError(f"FakeGmail has no route for {method} {target}")

    @staticmethod
    def _not_found() -> httpx.Response:
        return httpx.Response(404, json={"error": {"code": 404, "message": "Requested entity was not found.",
                                                   "errors": [{"reason": "notFound"}], "status": "NOT_FOUND"}})

    def _list(self, params: dict[str, str], labels: list[str]) -> httpx.Response:
        q = params.get("q", "")
        found = [m for m in self.messages.values()
                 if all(label in m["labelIds"] for label in labels)
                 and (params.get("includeSpamTrash") == "true" or not {"TRASH", "SPAM"} & set(m["labelIds"]))]
        if q:
            wanted = re.search(r"rfc822msgid:(\S+)", q)
            found = [m for m in found if wanted and any(
                h["name"].lower() == "message-id" and h["value"].strip("<>") == wanted.group(1).strip("<>")
                for h in m["payload"]["headers"])]
            if "in:sent" in q:
                found = [m for m in found if "SENT" in m["labelIds"]]
        found.sort(key=lambda m: m["id"], reverse=True)
        size = int(params.get("maxResults", 100))
        token = params.get("pageToken", "p0")
        if not re.fullmatch(r"p\d+", token):
            return httpx.Response(400, json={"error": {"code": 400, "message": "Invalid pageToken",
                                                       "errors": [{"reason": "invalidArgument"}]}})
        start = int(token[1:])
        chunk = found[start:start + size]
        body: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if chunk:
            body["messages"] = [{"id": m["id"], "threadId": m["threadId"]} for m in chunk]
        if start + size < len(found):
            body["nextPageToken"] = f"p{start + size}"
        return httpx.Response(200, json=body)

    def _history(self, params: dict[str, str], types: list[str]) -> httpx.Response:
        start = int(params["startHistoryId"])
        if start < self.oldest_history:
            return self._not_found()
        wanted = {"messageAdded": "messagesAdded", "messageDeleted": "messagesDeleted",
                  "labelAdded": "labelsAdded", "labelRemoved": "labelsRemoved"}
        keys = {wanted[t] for t in types} if types else set(wanted.values())
        records = [r for r in self.history if int(r["id"]) > start and keys & set(r)]
        size = int(params.get("maxResults", 100))
        offset = int(params.get("pageToken", "0"))
        chunk = records[offset:offset + size]
        body: dict[str, Any] = {"historyId": str(self.history_id)}
        if chunk:
            body["history"] = chunk
        if offset + size < len(records):
            body["nextPageToken"] = str(offset + size)
        return httpx.Response(200, json=body)

    def _upload_send(self, request: httpx.Request) -> httpx.Response:
        assert request.url.params["uploadType"] == "multipart"
        self.uploads = getattr(self, "uploads", 0) + 1
        boundary = re.search(r"boundary=(\S+)", request.headers["content-type"]).group(1).encode()
        parts = request.content.split(b"--" + boundary)[1:-1]
        metadata_part, message_part = (p.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for p in parts)
        assert b"Content-Type: message/rfc822" in parts[1]
        metadata = json.loads(metadata_part)
        self.units["send"] += 1
        return self._send({**metadata, "raw": base64.urlsafe_b64encode(message_part).decode()})

    def _send(self, body: dict[str, Any]) -> httpx.Response:
        raw = base64.urlsafe_b64decode(body["raw"] + "=" * (-len(body["raw"]) % 4))
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        thread = body.get("threadId")
        if thread and not any(m["threadId"] == thread for m in self.messages.values()):
            return httpx.Response(404, json={"error": {"code": 404, "message": "Requested entity was not found."}})
        mid = f"s{self.next_id:04d}"
        self.next_id += 1
        message = full_message(mid, labels=("SENT",), subject=str(parsed["Subject"]), sender=str(parsed["From"]),
                               to=str(parsed["To"]), thread=thread or f"t-{mid}", message_id=str(parsed["Message-ID"]))
        self.add(message, record=True)
        self.sent.append({"body": body, "mime": parsed})
        return httpx.Response(200, json={"id": mid, "threadId": message["threadId"], "labelIds": ["SENT"]})


@pytest.fixture
def fake_gmail() -> FakeGmail:
    return FakeGmail()


@pytest.fixture
def sleeps() -> RecordingSleep:
    """The clients' sleep: records requested delays instead of waiting them out."""
    return RecordingSleep()


@pytest.fixture
def make_api(sleeps: RecordingSleep):
    """A GmailClient on a transport (default: the FakeGmail fixture's)."""
    clients: list[GmailClient] = []

    def build(transport: httpx.AsyncBaseTransport, *, tokens: TokenSet | None = None, refresher=None,
              on_refreshed=None, **kw: Any) -> GmailClient:
        client = GmailClient(
            BASE,
            tokens or TokenSet("at-1", "rt-1", datetime.now(UTC) + timedelta(hours=1), None),
            refresher=refresher,
            on_tokens_refreshed=on_refreshed,
            transport=transport,
            sleep=sleeps,
            **kw,
        )
        clients.append(client)
        return client

    return build


@pytest.fixture
def helpers():
    """Builders shared by the test modules."""

    class H:
        full_message = staticmethod(full_message)
        b64url = staticmethod(b64url)

    return H
