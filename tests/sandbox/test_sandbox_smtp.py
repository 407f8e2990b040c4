"""The SMTP catcher over real sockets, with aiosmtplib as the client: STARTTLS and
implicit TLS with the sandbox CA, AUTH, what is recorded, the control API and faults."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from sandbox import SandboxServer

RAW = (
    b"From: Olivia <olivia@demo-realty.example>\r\n"
    b"To: Ann <ann@client.example>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Message-ID: <catcher-1@emailsync.test>\r\n"
    b"\r\n"
    b"Hello Ann\r\n"
)


@pytest.fixture()
async def control_async(sandbox_server: SandboxServer, control: httpx.Client) -> AsyncIterator[httpx.AsyncClient]:
    """An async control client (after ``control`` reset the sandbox): waiting for a
    message must not block the event loop the SMTP client runs on."""
    async with httpx.AsyncClient(base_url=f"{sandbox_server.base_url}/_sandbox", verify=sandbox_server.ssl_context(), timeout=30) as client:
        yield client


async def caught(client: httpx.AsyncClient, count: int = 0, **params: str) -> list[dict]:
    """The caught messages, once there are ``count`` of them (the catcher waits, up to 10 s)."""
    response = await client.get("/smtp/messages", params={"wait_for": count, "timeout": 10, **params})
    assert response.status_code == 200, response.text
    return response.json()


def smtp_client(server: SandboxServer, *, implicit: bool = False, **kwargs) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=server.smtps_port if implicit else server.smtp_port,
        use_tls=implicit,
        start_tls=False,
        tls_context=server.ssl_context(),
        local_hostname="tests.emailsync.test",
        timeout=10,
        **kwargs,
    )


async def transaction(smtp: aiosmtplib.SMTP, mail_from: str, rcpts: list[str], raw: bytes = RAW) -> aiosmtplib.SMTPResponse:
    await smtp.mail(mail_from)
    for rcpt in rcpts:
        await smtp.rcpt(rcpt)
    return await smtp.data(raw)


async def test_starttls_auth_and_capture(sandbox_server: SandboxServer, control_async: httpx.AsyncClient) -> None:
    username, password = sandbox_server.smtp_credentials
    smtp = smtp_client(sandbox_server)
    await smtp.connect()
    await smtp.ehlo()
    assert smtp.supports_extension("starttls")
    assert not smtp.supports_extension("auth")  # offered only once TLS is on
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await smtp.mail("olivia@demo-realty.example")  # AUTH is required first
    assert refused.value.code == 530
    await smtp.starttls()
    await smtp.ehlo()
    assert smtp.supports_extension("auth") and {"plain", "login"} <= set(smtp.server_auth_methods)
    await smtp.login(username, password)
    reply = await transaction(smtp, "bounce@demo-realty.example", ["ann@client.example", "audit@crm.example"])
    assert reply.code == 250
    await smtp.quit()

    (message,) = await caught(control_async, 1)
    assert message["listener"] == "starttls" and message["tls"] is True
    assert message["username"] == username
    assert message["envelope"] == {"mail_from": "bounce@demo-realty.example", "rcpt_tos": ["ann@client.example", "audit@crm.example"]}
    assert base64.b64decode(message["raw_base64"]) == RAW and message["size"] == len(RAW)
    assert message["headers"]["subject"] == "Grüße"
    assert message["headers"]["message_id"] == "<catcher-1@emailsync.test>"
    assert message["headers"]["to"] == "Ann <ann@client.example>"
    assert message["headers"]["bcc"] is None
    assert message["seq"] >= 1 and message["received_at"].endswith("Z")


async def test_implicit_tls_and_auth_login(sandbox_server: SandboxServer, control_async: httpx.AsyncClient) -> None:
    username, password = sandbox_server.smtp_credentials
    smtp = smtp_client(sandbox_server, implicit=True)
    await smtp.connect()
    await smtp.ehlo()
    assert not smtp.supports_extension("starttls")  # already TLS
    await smtp.auth_login(username, password)
    assert (await transaction(smtp, "olivia@demo-realty.example", ["ann@client.example"])).code == 250
    await smtp.quit()
    (message,) = await caught(control_async, 1)
    assert (message["listener"], message["tls"], message["username"]) == ("implicit", True, username)


async def test_a_wrong_password_is_refused_and_credentials_can_change(
    sandbox_server: SandboxServer, control: httpx.Client
) -> None:
    username, password = sandbox_server.smtp_credentials

    async def login(user: str, secret: str) -> None:
        smtp = smtp_client(sandbox_server, implicit=True)
        await smtp.connect()
        try:
            await smtp.login(user, secret)
        finally:
            smtp.close()

    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
        await login(username, password + "-wrong")
    assert refused.value.code == 535

    answer = control.post("/smtp/faults", json={"auth": {"username": "other@relay.test", "password": "n3w"}})
    assert answer.status_code == 200 and "n3w" not in answer.text
    assert sandbox_server.smtp_credentials == ("other@relay.test", "n3w")
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        await login(username, password)
    await login("other@relay.test", "n3w")

    assert control.delete("/smtp/faults").status_code == 204  # back to the default pair
    await login(username, password)


async def test_auth_without_tls_is_a_setting(sandbox_server: SandboxServer, control: httpx.Client, control_async: httpx.AsyncClient) -> None:
    assert control.patch("/config", json={"smtp_auth_without_tls": True}).json()["smtp_auth_without_tls"] is True
    smtp = smtp_client(sandbox_server)
    await smtp.connect()
    await smtp.login(*sandbox_server.smtp_credentials)
    assert (await transaction(smtp, "olivia@demo-realty.example", ["ann@client.example"])).code == 250
    await smtp.quit()
    (message,) = await caught(control_async, 1)
    assert message["tls"] is False

    assert control.patch("/config", json={"smtp_auth_required": False}).status_code == 200
    anonymous = smtp_client(sandbox_server)
    await anonymous.connect()
    assert (await transaction(anonymous, "olivia@demo-realty.example", ["bob@client.example"])).code == 250
    await anonymous.quit()
    (anonymous_message,) = await caught(control_async, 1, rcpt="bob@client.example")
    assert anonymous_message["username"] is None


async def test_describe_filter_and_clear(sandbox_server: SandboxServer, control: httpx.Client, control_async: httpx.AsyncClient) -> None:
    described = control.get("/smtp").json()
    assert described["smtp_port"] == sandbox_server.smtp_port and described["smtps_port"] == sandbox_server.smtps_port
    assert {(item["name"], item["host"], item["port"]) for item in described["listeners"]} == {
        ("starttls", "127.0.0.1", sandbox_server.smtp_port),
        ("implicit", "127.0.0.1", sandbox_server.smtps_port),
    }
    assert described["username"] == sandbox_server.smtp_credentials.username
    assert sandbox_server.smtp_credentials.password not in json.dumps(described)

    smtp = smtp_client(sandbox_server, implicit=True)
    await smtp.connect()
    await smtp.login(*sandbox_server.smtp_credentials)
    await transaction(smtp, "olivia@demo-realty.example", ["ann@client.example"])
    await transaction(smtp, "olivia@demo-realty.example", ["BOB@client.example"])
    await smtp.quit()
    first, second = await caught(control_async, 2)
    assert first["seq"] < second["seq"]  # newest last
    assert [m["envelope"]["rcpt_tos"] for m in await caught(control_async, rcpt="bob@client.example")] == [["BOB@client.example"]]

    assert control.delete("/smtp/messages").status_code == 204
    assert await caught(control_async) == []


async def test_faults_temp_fail_reject_and_clear(sandbox_server: SandboxServer, control: httpx.Client, control_async: httpx.AsyncClient) -> None:
    assert control.post("/smtp/faults", json={"temp_fail_data": 1, "reject_rcpt": "^nobody@"}).json() == {
        "hold_seconds": 0.0, "temp_fail_data": 1, "reject_rcpt": "^nobody@", "username": sandbox_server.smtp_credentials.username,
    }
    smtp = smtp_client(sandbox_server, implicit=True)
    await smtp.connect()
    await smtp.login(*sandbox_server.smtp_credentials)
    await smtp.mail("olivia@demo-realty.example")
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as rejected:
        await smtp.rcpt("Nobody@client.example")
    assert rejected.value.code == 550
    await smtp.rcpt("ann@client.example")
    with pytest.raises(aiosmtplib.SMTPDataError) as deferred:
        await smtp.data(RAW)
    assert deferred.value.code == 451
    assert await caught(control_async) == []  # a 451 keeps nothing
    assert (await transaction(smtp, "olivia@demo-realty.example", ["ann@client.example"])).code == 250  # only the next one failed

    # DELETE /_sandbox/faults (between scenario tests) clears the SMTP faults too, and keeps the mail.
    control.post("/smtp/faults", json={"temp_fail_data": 5})
    assert control.delete("/faults").status_code == 204
    assert control.get("/smtp").json()["faults"]["temp_fail_data"] == 0
    assert (await transaction(smtp, "olivia@demo-realty.example", ["ann@client.example"])).code == 250
    await smtp.quit()
    assert len(await caught(control_async, 2)) == 2

    assert control.post("/smtp/faults", json={"hold": 1}).status_code == 400
    assert control.post("/smtp/faults", json={"reject_rcpt": "("}).status_code == 400
    assert control.post("/smtp/faults", json={"auth": {"username": "x"}}).status_code == 400
    assert control.post("/reset").status_code == 204  # a reset drops the caught mail
    assert await caught(control_async) == []


async def test_hold_stores_the_message_before_answering(sandbox_server: SandboxServer, control: httpx.Client, control_async: httpx.AsyncClient) -> None:
    control.post("/smtp/faults", json={"hold_seconds": 60})
    smtp = smtp_client(sandbox_server, implicit=True)
    await smtp.connect()
    await smtp.login(*sandbox_server.smtp_credentials)
    sending = asyncio.create_task(transaction(smtp, "olivia@demo-realty.example", ["ann@client.example"]))
    (message,) = await caught(control_async, 1)  # accepted by the server...
    assert not sending.done()  # ...while the client still waits for the 250
    assert message["envelope"]["rcpt_tos"] == ["ann@client.example"]
    sending.cancel()  # the sender dies without learning the outcome
    with pytest.raises(asyncio.CancelledError):
        await sending
    smtp.close()


def test_cli_banner_lists_the_smtp_listeners(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--smtp-port", "0", "--smtps-port", "0", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(repo)}, cwd=repo,
    )
    try:
        banner = json.loads(process.stdout.readline())
        assert banner["smtp_port"] > 0 and banner["smtps_port"] > 0 and banner["smtp_port"] != banner["smtps_port"]
        assert banner["smtp_username"] and banner["smtp_password"]
        # Bound before the banner is printed: the greeting comes once the app has started.
        with socket.create_connection(("127.0.0.1", banner["smtp_port"]), timeout=15) as plain:
            assert plain.recv(512).startswith(b"220 ")
        context = ssl.create_default_context(cafile=banner["ca_file"])
        with (socket.create_connection(("127.0.0.1", banner["smtps_port"]), timeout=15) as raw,
              context.wrap_socket(raw, server_hostname="127.0.0.1") as secured):
            assert secured.recv(512).startswith(b"220 ")
    finally:
        process.terminate()
        process.wait(timeout=10)
