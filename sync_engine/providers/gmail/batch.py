"""The Google batch wire format (``POST /batch/gmail/v1``), encoded and decoded. Pure.

A batch is a ``multipart/mixed`` body whose parts are ``application/http`` requests,
each with a ``Content-ID``; the answer is a ``multipart/mixed`` body of
``application/http`` responses whose ``Content-ID`` is ``response-`` + the request's.
Every inner response has its own status: one message may be throttled (``429``) or
gone (``404``) while the others succeed, so the caller retries part of a batch.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

_STATUS_LINE = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})")
_BLANK_LINE = re.compile(r"\r?\n\r?\n")


class BatchFormatError(ValueError):
    """The batch response could not be read."""


@dataclass(slots=True)
class InnerRequest:
    method: str
    path: str  # absolute path with query, e.g. /gmail/v1/users/me/messages/ID?format=full


@dataclass(slots=True)
class InnerResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: Any = None  # decoded JSON (None when empty or not JSON)
    text: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def new_boundary() -> str:
    return f"batch_{uuid.uuid4().hex}"


def encode(requests: Sequence[InnerRequest], boundary: str) -> bytes:
    """The ``multipart/mixed`` body for ``requests``; part ``i`` has ``Content-ID: <item-i>``."""
    chunks: list[str] = []
    for index, request in enumerate(requests):
        chunks.append(
            f"--{boundary}\r\n"
            "Content-Type: application/http\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <item-{index}>\r\n"
            "\r\n"
            f"{request.method} {request.path}\r\n"
            "\r\n"
        )
    chunks.append(f"--{boundary}--\r\n")
    return "".join(chunks).encode("utf-8")


def boundary_of(content_type: str | None) -> str | None:
    if not content_type:
        return None
    holder = Message()
    holder["Content-Type"] = content_type
    if holder.get_content_maintype() != "multipart":
        return None
    boundary = holder.get_param("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


def decode(body: str, content_type: str | None, expected: int) -> list[InnerResponse]:
    """The ``expected`` inner responses of a batch answer, in request order.

    Parts are matched by ``Content-ID`` (``<response-item-N>``); parts without a usable
    id are taken in order. A request with no answer gets a synthetic ``500`` (retried
    like any server error)."""
    boundary = boundary_of(content_type)
    if boundary is None:
        raise BatchFormatError("batch response is not multipart/mixed with a boundary")
    delimiter = f"--{boundary}"
    segments = body.split(delimiter)
    by_index: dict[int, InnerResponse] = {}
    unnamed: list[InnerResponse] = []
    for segment in segments[1:]:
        if segment.startswith("--"):
            break  # the closing delimiter
        part = segment.lstrip("\r\n")
        if not part.strip():
            continue
        mime_headers, http = _split_head(part)
        response = _parse_http(http)
        index = _index_of(mime_headers.get("content-id"))
        if index is not None and 0 <= index < expected and index not in by_index:
            by_index[index] = response
        else:
            unnamed.append(response)
    results: list[InnerResponse] = []
    spare = iter(unnamed)
    for index in range(expected):
        found = by_index.get(index) or next(spare, None)
        results.append(found or InnerResponse(status=500, text="no response for this batch item"))
    return results


def _split_head(text: str) -> tuple[dict[str, str], str]:
    match = _BLANK_LINE.search(text)
    if match is None:
        return _headers(text), ""
    return _headers(text[: match.start()]), text[match.end() :]


def _headers(block: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.setdefault(name.strip().lower(), value.strip())
    return headers


def _parse_http(text: str) -> InnerResponse:
    text = text.lstrip("\r\n")
    first, _, rest = text.partition("\n")
    match = _STATUS_LINE.match(first.strip())
    if match is None:
        raise BatchFormatError("batch part without an HTTP status line")
    if rest.startswith(("\r\n", "\n")):  # no headers: the body follows the status line
        headers, content = {}, rest.split("\n", 1)[1]
    else:
        headers, content = _split_head(rest)
    content = content.rstrip("\r\n")
    parsed: Any = None
    if content.strip():
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
    return InnerResponse(status=int(match.group(1)), headers=headers, body=parsed, text=content)


def _index_of(content_id: str | None) -> int | None:
    if not content_id:
        return None
    match = re.search(r"item-(\d+)", content_id)
    return int(match.group(1)) if match else None
