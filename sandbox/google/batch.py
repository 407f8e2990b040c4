"""Google's batch endpoint for Gmail: ``POST /batch/gmail/v1``.

The body is multipart/mixed; every part is ``Content-Type: application/http``
holding one HTTP request (``GET /gmail/v1/users/me/messages/ID HTTP/1.1``,
headers, body). The answer is multipart/mixed too, one ``application/http``
part per request in the same order, with ``Content-ID: <response-ID>`` for a
request's ``Content-ID: <ID>``. At most 100 requests per batch.

Each inner request goes through the whole sandbox app in-process, so faults,
quota (every inner call is charged; a batch is no cheaper) and the request
log apply to it as to a direct call. The outer request's Authorization header
applies to inner requests that carry none.
"""

from __future__ import annotations

import email
import email.policy
import http
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.context import Sandbox
from sandbox.google.gmail_common import error_body, error_response, invalid

MAX_PARTS = 100
_FORWARDED = ("authorization",)


@dataclass
class InnerRequest:
    content_id: str | None
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _parse_http(content_id: str | None, payload: bytes) -> InnerRequest:
    text = payload.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    lines = head.decode("utf-8", "replace").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ValueError("empty part")
    request_line = lines[0].split()
    if len(request_line) < 2:
        raise ValueError(f"bad request line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip():
            headers[name.strip().lower()] = value.strip()
    url = urlsplit(request_line[1])
    target = url.path + (f"?{url.query}" if url.query else "")
    return InnerRequest(content_id, request_line[0].upper(), target, headers, body.rstrip(b"\n"))


def parse_batch(content_type: str, body: bytes) -> list[InnerRequest]:
    envelope = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.compat32)
    if not envelope.is_multipart():
        raise ValueError("a batch is multipart/mixed")
    requests = []
    for part in envelope.get_payload():
        content_id = (part.get("Content-ID") or "").strip() or None
        payload = part.get_payload(decode=True)
        if payload is None:
            payload = part.as_bytes().partition(b"\n\n")[2]
        requests.append(_parse_http(content_id, payload))
    return requests


def _response_part(content_id: str | None, response: httpx.Response) -> bytes:
    lines = ["Content-Type: application/http"]
    if content_id:
        inner = content_id[1:-1] if content_id.startswith("<") and content_id.endswith(">") else content_id
        lines.append(f"Content-ID: <response-{inner}>")
    try:
        phrase = http.HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = ""
    lines += ["", f"HTTP/1.1 {response.status_code} {phrase}".rstrip()]
    for name in ("content-type", "retry-after", "www-authenticate"):
        if name in response.headers:
            lines.append(f"{name.title()}: {response.headers[name]}")
    lines += [f"Content-Length: {len(response.content)}", "", ""]
    return "\r\n".join(lines).encode() + response.content


async def batch(sandbox: Sandbox, request: Request) -> Response:
    try:
        inner_requests = parse_batch(request.headers.get("content-type", ""), await request.body())
    except (ValueError, TypeError) as exc:
        return error_response(invalid(f"Failed to parse batch request, error: {exc}"))
    if not inner_requests:
        return error_response(invalid("Failed to parse batch request, error: 0 items"))
    if len(inner_requests) > MAX_PARTS:
        return error_response(invalid(f"A batch request cannot contain more than {MAX_PARTS} requests"))
    outer = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
    boundary = "batch_" + secrets.token_urlsafe(18).replace("-", "_")
    chunks: list[bytes] = []
    transport = httpx.ASGITransport(app=sandbox.extensions["app"])
    async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as client:
        for inner in inner_requests:
            if not inner.target.startswith("/gmail/v1/"):
                body = error_body(404, f"Batch item targets an unknown API path: {inner.target}", "notFound")
                response = httpx.Response(404, json=body)
            else:
                headers = {**outer, **{k: v for k, v in inner.headers.items() if k not in ("host", "content-length")}}
                response = await client.request(inner.method, inner.target, headers=headers, content=inner.body or None)
            chunks.append(f"--{boundary}\r\n".encode() + _response_part(inner.content_id, response) + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return Response(b"".join(chunks), media_type=f"multipart/mixed; boundary={boundary}")


def routes(sandbox: Sandbox) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return await batch(sandbox, request)

    return [Route("/batch/gmail/v1", endpoint, methods=["POST"]), Route("/batch", endpoint, methods=["POST"])]
