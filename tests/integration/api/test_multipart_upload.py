"""sendEmail with files uploaded per the GraphQL multipart request spec, as a client does.

The files go out through the sandbox mailbox and land in its Sent folder byte for byte;
the CRM keeps them (downloadable like synced ones). Uploads are bounded and checked as
base64 attachments are, and a multipart request needs a preflight header (CSRF).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api.graphql_http import MAX_MULTIPART_BYTES
from tests.integration.api import test_attachment_download as downloads
from tests.integration.api.test_attachment_download import sandbox_attachments, tiny_pdf, tiny_png
from tests.support.flows import SEND, connect_mailbox
from tests.support.stack import Stack, Tenant

sandbox_server = downloads.sandbox_server  # fixtures: the sandbox, a full stack per test
stack = downloads.stack
PREFLIGHT = {"GraphQL-Require-Preflight": "1"}
ATTACHMENT_URLS = """query ($id: ID!) { thread(id: $id) { messages(first: 5) { edges { node {
  attachments { filename downloadUrl } } } } } }"""
THREAD_COUNT = "{ threads(first: 1) { edges { node { id } } } }"
THREE_MB = 3 * 1024 * 1024


def send_input(attachments: list[dict[str, Any]], subject: str = "Floor plan") -> dict[str, Any]:
    return {"input": {"to": ["ann@client.example"], "subject": subject, "text": "As promised.",
                      "idempotencyKey": str(uuid.uuid4()), "attachments": attachments}}


async def post_multipart(stack: Stack, tenant: Tenant, variables: dict[str, Any], files: dict[str, tuple[str, bytes, str]],
                         file_map: dict[str, list[str]], headers: dict[str, str] = PREFLIGHT) -> httpx.Response:
    """One spec request: ``operations`` (files as null), ``map``, then the file parts."""
    operations = json.dumps({"query": SEND, "variables": variables})
    return await stack.http.post("/graphql", data={"operations": operations, "map": json.dumps(file_map)}, files=files,
                                 headers={"Authorization": f"Bearer {tenant.token}", **headers})


def one_file(name: str, content: bytes, content_type: str) -> dict[str, Any]:
    return {"files": {"0": (name, content, content_type)}, "file_map": {"0": ["variables.input.attachments.0.file"]}}


async def send_errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["sendEmail"]["userErrors"]


@pytest.mark.parametrize("provider", ["OUTLOOK", "GMAIL"])
async def test_uploaded_files_go_out_byte_identical(stack: Stack, provider: str) -> None:
    tenant = await stack.seed_tenant(name="Acme Homes", contacts=("ann@client.example",))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, provider, mailbox)
    pdf, png = tiny_pdf(), tiny_png()
    # The first takes its name and type from its part; the second's input names it (the
    # browser sent its client-side path as the part's name).
    variables = send_input([{"file": None}, {"file": None, "filename": "kitchen.png", "contentType": "image/png"}])
    response = await post_multipart(stack, tenant, variables, files={
        "0": ("floorplan.pdf", pdf, "application/pdf"),
        "1": ("C:\\Users\\me\\IMG_0001.PNG", png, "application/octet-stream"),
    }, file_map={"0": ["variables.input.attachments.0.file"], "1": ["variables.input.attachments.1.file"]})
    assert await send_errors(response) == []
    thread_id = response.json()["data"]["sendEmail"]["thread"]["id"]

    async def in_sent_folder() -> dict[str, bytes] | None:
        return await sandbox_attachments(stack, mailbox, "sent", "Floor plan")

    sent = await stack.wait_for(in_sent_folder, what="the email in the Sent folder")
    assert sent == {"floorplan.pdf": pdf, "kitchen.png": png}
    # The CRM's copy of what it sent downloads the same bytes.
    data = await stack.graphql(ATTACHMENT_URLS, {"id": thread_id}, token=tenant.token)
    stored = [a for m in data["thread"]["messages"]["edges"] for a in m["node"]["attachments"]]
    downloads = {a["filename"]: (await stack.http.get(a["downloadUrl"])).content for a in stored}
    assert downloads == {"floorplan.pdf": pdf, "kitchen.png": png}


async def test_uploads_are_checked_and_bounded(stack: Stack) -> None:
    tenant = await stack.seed_tenant(name="Acme Homes", contacts=("ann@client.example",))
    variables = send_input([{"file": None}])

    too_large = one_file("big.pdf", b"%PDF-1.4\n" + b"\0" * THREE_MB, "application/pdf")
    errors = await send_errors(await post_multipart(stack, tenant, variables, **too_large))
    assert [(e["code"], e["field"]) for e in errors] == [("ATTACHMENT_TOO_LARGE", "attachments.0.file")]

    mismatch = one_file("report.pdf", tiny_png(), "application/pdf")
    errors = await send_errors(await post_multipart(stack, tenant, variables, **mismatch))
    assert [e["code"] for e in errors] == ["ATTACHMENT_CONTENT_MISMATCH"]

    both = send_input([{"file": None, "filename": "a.pdf", "contentType": "application/pdf", "contentBase64": "JVBERi0="}])
    errors = await send_errors(await post_multipart(stack, tenant, both, **one_file("a.pdf", tiny_pdf(), "application/pdf")))
    assert [(e["code"], e["field"]) for e in errors] == [("INVALID_ATTACHMENT", "attachments.0")]
    neither = send_input([{"filename": "a.pdf", "contentType": "application/pdf"}])
    assert [e["code"] for e in await send_errors(await json_send(stack, tenant, neither))] == ["INVALID_ATTACHMENT"]
    # The Upload scalar takes any JSON value: a string is not a file.
    as_string = send_input([{"file": "%PDF-1.4 not a file part", "filename": "a.pdf"}])
    assert [e["code"] for e in await send_errors(await json_send(stack, tenant, as_string))] == ["INVALID_ATTACHMENT"]

    pdf = one_file("floorplan.pdf", tiny_pdf(), "application/pdf")
    # No preflight header: a cross-site form could have sent this; refused before anything runs.
    refused = await post_multipart(stack, tenant, variables, **pdf, headers={})
    assert refused.status_code == 400 and "preflight" in refused.json()["errors"][0]["message"].lower()
    # A map whose path runs through a string, and more files than attachments: 400s, not 500s.
    bad_map = await post_multipart(stack, tenant, variables, files=pdf["files"],
                                   file_map={"0": ["variables.input.to.0.x"]})
    assert bad_map.status_code == 400, bad_map.text
    many = {str(i): (f"{i}.pdf", tiny_pdf(), "application/pdf") for i in range(21)}
    too_many = await post_multipart(stack, tenant, variables, files=many, file_map={"0": ["variables.input.attachments.0.file"]})
    assert too_many.status_code == 400, too_many.text

    # Bodies past 20 attachments of 3 MB: refused by their declared length before being
    # read, or, without one (chunked), once that much has arrived.
    assert await raw_multipart_status(stack, tenant, declared_length=MAX_MULTIPART_BYTES + 1) == 413
    assert await raw_multipart_status(stack, tenant, chunked_bytes=MAX_MULTIPART_BYTES + 1024 * 1024) == 413

    assert (await stack.graphql(THREAD_COUNT, token=tenant.token))["threads"]["edges"] == []  # nothing was queued


async def json_send(stack: Stack, tenant: Tenant, variables: dict[str, Any]) -> httpx.Response:
    return await stack.http.post("/graphql", json={"query": SEND, "variables": variables},
                                 headers={"Authorization": f"Bearer {tenant.token}"})


async def raw_multipart_status(stack: Stack, tenant: Tenant, *, declared_length: int | None = None,
                               chunked_bytes: int | None = None) -> int:
    """The status a multipart POST gets when the client declares ``declared_length`` (and
    sends nothing), or streams ``chunked_bytes`` chunked; read while the client still sends."""
    boundary = "emailsync-test-boundary"
    headers = [f"Host: {urlsplit(stack.base_url).netloc}", f"Authorization: Bearer {tenant.token}",
               f"Content-Type: multipart/form-data; boundary={boundary}", "GraphQL-Require-Preflight: 1"]
    headers.append(f"Content-Length: {declared_length}" if declared_length is not None else "Transfer-Encoding: chunked")
    parsed = urlsplit(stack.base_url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    writer.write(("POST /graphql HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode())

    async def pump() -> None:
        with contextlib.suppress(ConnectionError):
            for chunk in _huge_multipart_body(boundary, chunked_bytes or 0):
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sending = asyncio.create_task(pump())
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=60)
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        writer.close()
    return int(status_line.split()[1])


def _huge_multipart_body(boundary: str, size: int) -> Iterator[bytes]:
    if size <= 0:
        return
    operations = json.dumps({"query": SEND, "variables": send_input([{"file": None}])})
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n"
            '{"0": ["variables.input.attachments.0.file"]}\r\n'
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"huge.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n%PDF-1.4\n").encode()
    yield head
    chunk = b"\0" * (1024 * 1024)
    for _ in range(size // len(chunk) + 1):
        yield chunk
