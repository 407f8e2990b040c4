"""Downloading a synced attachment through its signed URL, as a client does.

A contact's email with a PDF and a PNG arrives in a sandbox mailbox, the mailbox syncs,
the client asks the thread for its attachments' ``downloadUrl`` and fetches them with a
plain GET and no Authorization header: the bytes are the ones the contact sent. Then
everything a holder of a URL could try: tampering, expiry, another tenant's id, a URL
signed under a rotated-out key.
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import struct
import time
import uuid
import zlib
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from api.attachment_routes import content_disposition  # importing it also filters the access log, as the app does
from db.models import Attachment, Message, Thread
from sync_engine.services.attachments import signed_download_url
from tests.scenarios import conftest as scenarios
from tests.support.flows import connect_mailbox, sandbox_messages
from tests.support.stack import Stack, Tenant

THREAD_ATTACHMENTS = """query { threads(first: 5) { edges { node { subject messages(first: 10) { edges { node {
  attachments { id filename contentType size downloadUrl } } } } } } } }"""
# The end-to-end scenarios' fixtures: one sandbox per session, a full stack per test
# (SQLite with the embedded queue, and PostgreSQL + Redis with a separate worker).
sandbox_server = scenarios.sandbox_server
stack = scenarios.stack

# Quotes, a semicolon and non-ASCII letters: none of them may break Content-Disposition.
PDF_NAME = 'Devis "été"; n°7.pdf'


def tiny_pdf() -> bytes:
    """A small, valid one-page PDF (with the binary comment line real PDFs carry)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>"]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def tiny_png() -> bytes:
    """A valid 2x2 RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([200, 30 * y, 90, 10, 250, 60 * y]) for y in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


async def sandbox_attachments(stack: Stack, mailbox: str, folder: str, subject: str) -> dict[str, bytes] | None:
    """The attachments of the message with ``subject`` in a sandbox folder, from its MIME
    (what the provider holds), by file name; None while there is no such message."""
    found = [m for m in await sandbox_messages(stack, mailbox, folder) if m["subject"] == subject]
    if not found:
        return None
    detail = (await stack.sandbox.get(f"/_sandbox/mailboxes/{mailbox}/messages/{found[0]['id']}")).json()
    parsed = email.message_from_string(detail["mime"], policy=email.policy.default)
    return {part.get_filename(): part.get_content() for part in parsed.iter_attachments()}  # type: ignore[attr-defined]


async def synced_attachments(stack: Stack, tenant: Tenant, subject: str, count: int) -> list[dict[str, Any]] | None:
    data = await stack.graphql(THREAD_ATTACHMENTS, token=tenant.token)
    for thread in data["threads"]["edges"]:
        if thread["node"]["subject"] == subject:
            found = [a for m in thread["node"]["messages"]["edges"] for a in m["node"]["attachments"]]
            return found if len(found) >= count else None
    return None


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def with_attachment_id(url: str, attachment_id: uuid.UUID) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/attachments/{attachment_id}").geturl()


async def other_tenants_attachment(stack: Stack) -> tuple[Tenant, uuid.UUID]:
    """Another sub-account with a stored attachment (rows as the importer writes them)."""
    other = await stack.seed_tenant(name="Rival Realty", contacts=("bob@rival.example",))
    async with stack.runtime.sessions.begin() as session:
        thread = Thread(sub_account_id=other.sub_account_id, user_id=other.user_id, subject="Rival plans")
        session.add(thread)
        await session.flush()
        message = Message(sub_account_id=other.sub_account_id, thread_id=thread.id, direction="inbound",
                          origin="mailbox", status="synced", subject="Rival plans", snippet="")
        session.add(message)
        await session.flush()
        attachment = Attachment(message_id=message.id, sub_account_id=other.sub_account_id, filename="plans.pdf",
                                content_type="application/pdf", size=len(tiny_pdf()), content=tiny_pdf())
        session.add(attachment)
        await session.flush()
        return other, attachment.id


@pytest.mark.parametrize("provider", ["OUTLOOK", "GMAIL"])
async def test_synced_attachment_downloads_through_its_signed_url(stack: Stack, provider: str) -> None:
    contact = f"ann-{uuid.uuid4().hex[:6]}@client.example"
    tenant = await stack.seed_tenant(name="Acme Homes", contacts=(contact,))
    mailbox = tenant.user_email
    await connect_mailbox(stack, tenant, provider, mailbox)
    sent = {PDF_NAME: tiny_pdf(), "photo.png": tiny_png()}
    subject = "Signed quote and a photo"
    arrived = await stack.sandbox.post(f"/_sandbox/mailboxes/{mailbox}/inbound", json={
        "from": {"address": contact, "name": "Ann"}, "to": [mailbox], "subject": subject, "text": "See attached.",
        "attachments": [
            {"filename": PDF_NAME, "content_type": "application/pdf", "content_base64": _b64(sent[PDF_NAME])},
            {"filename": "photo.png", "content_type": "image/png", "content_base64": _b64(sent["photo.png"])},
        ]})
    assert arrived.status_code == 201, arrived.text
    in_mailbox = await sandbox_attachments(stack, mailbox, "inbox", subject)
    assert in_mailbox == sent  # what the provider holds is what was sent

    async def synced() -> list[dict[str, Any]] | None:
        return await synced_attachments(stack, tenant, subject, count=2)

    attachments = {a["filename"]: a for a in await stack.wait_for(synced, what="the synced attachments")}
    assert set(attachments) == set(sent)
    issued_at = time.time()
    for filename, content in sent.items():
        url = attachments[filename]["downloadUrl"]
        assert url.startswith(f"{stack.settings.public_base_url}/attachments/")
        expires = int(parse_qs(urlsplit(url).query)["expires"][0])
        assert issued_at - 5 < expires - stack.settings.attachment_url_ttl <= issued_at + 1
        response = await stack.http.get(url)  # no Authorization header: the URL is the credential
        assert response.status_code == 200, response.text
        assert response.content == content == in_mailbox[filename]
        assert response.headers["content-type"] == attachments[filename]["contentType"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "private, no-store"
        assert "sandbox" in response.headers["content-security-policy"]
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        encoded = disposition.split("filename*=UTF-8''", 1)[1]
        assert unquote(encoded) == filename and '"' not in encoded and ";" not in encoded

    url = attachments[PDF_NAME]["downloadUrl"]
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    tampered = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    refused = {
        "tampered signature": with_query(url, signature=tampered),
        "no signature": with_query(url, signature=""),
        "expiry pushed back": with_query(url, expires=str(int(expires) + 3600)),
        "another sub-account claimed": with_query(url, sub_account=str(uuid.uuid4())),
        "expired": signed_download_url(stack.settings, _attachment_id(url), tenant.sub_account_id,
                                       now=time.time() - stack.settings.attachment_url_ttl - 1),
        # Signed with the key a rotation would put first: the server still has the old one first.
        "other key": signed_download_url(_rotated(stack), _attachment_id(url), tenant.sub_account_id),
    }
    for case, bad_url in refused.items():
        response = await stack.http.get(bad_url)
        assert response.status_code == 403, case
        assert response.content != sent[PDF_NAME] and response.headers["cache-control"] == "private, no-store", case

    other, other_attachment = await other_tenants_attachment(stack)
    # Our valid-looking URL pointed at the other tenant's attachment: the signature no longer fits.
    assert (await stack.http.get(with_attachment_id(url, other_attachment))).status_code == 403
    # Even a genuine signature naming our sub-account cannot reach it: the read is scoped.
    forged = signed_download_url(stack.settings, other_attachment, tenant.sub_account_id)
    assert (await stack.http.get(forged)).status_code == 404
    theirs = await stack.http.get(signed_download_url(stack.settings, other_attachment, other.sub_account_id))
    assert theirs.status_code == 200 and theirs.content == tiny_pdf()  # it exists, for its own tenant
    assert (await stack.http.get(signed_download_url(stack.settings, uuid.uuid4(), tenant.sub_account_id))).status_code == 404
    assert (await stack.http.post(url)).status_code == 405


def test_access_log_never_shows_a_signature() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/attachments/x?sub_account=s&expires=1&signature=SECRET", "1.1", 200),
                               None)
    assert logging.getLogger("uvicorn.access").filter(record)
    line = record.getMessage()
    assert "SECRET" not in line and "signature=[redacted]" in line and "expires=1" in line


def test_content_disposition_survives_any_filename() -> None:
    for name in ['a\r\nSet-Cookie: x=1.pdf', 'q"uote\\.pdf', "\udcff-broken.pdf", "", "名前.png"]:
        header = content_disposition(name)
        assert header.startswith("attachment; filename=\"") and all(" " <= c <= "~" for c in header), name
        encoded = header.split("filename*=UTF-8''", 1)[1]
        assert unquote(encoded, errors="replace") == name.encode("utf-8", "replace").decode("utf-8", "replace"), name


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def _attachment_id(url: str) -> uuid.UUID:
    return uuid.UUID(urlsplit(url).path.rsplit("/", 1)[1])


def _rotated(stack: Stack) -> Any:
    current = stack.settings.encryption_keys.get_secret_value()
    return stack.settings.model_copy(update={"encryption_keys": SecretStr(f"{Fernet.generate_key().decode()},{current}")})
