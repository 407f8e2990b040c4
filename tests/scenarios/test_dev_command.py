"""``emailsync dev`` as a new user runs it: banner, GraphiQL, the demo flow clicked through."""

from __future__ import annotations

import html
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.browser import auto_post_form
from tests.support.stack import free_port


def _wait_for_banner(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"emailsync dev exited: {''.join(lines)}")
        lines.append(line)
        if "completeEmailConnection(input" in line:  # the banner's last line
            return "".join(lines)
    raise AssertionError("no banner")


def confirm_page_token(page: httpx.Response, location: str, port: int) -> str:
    """The /connected page a browser lands on: it says what happened and how to finish."""
    assert location.startswith(f"http://127.0.0.1:{port}/connected?")
    flow_token = parse_qs(urlsplit(location).query)["emailConnectionFlow"][0]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Nothing is connected yet" in page.text and "completeEmailConnection" in page.text
    assert flow_token in page.text  # to paste into GraphiQL
    return flow_token


def test_dev_serves_graphiql_and_the_demo_flow_works(tmp_path: Path) -> None:
    port, sandbox_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emailsync.cli", "dev", "--port", str(port), "--sandbox-port", str(sandbox_port),
         "--state-dir", str(tmp_path / "dev")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        banner = _wait_for_banner(proc)
        assert f"http://127.0.0.1:{port}/graphql" in banner
        token = re.search(r"Bearer token: (\S+)", banner).group(1)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=20)
        for _ in range(100):  # uvicorn starts listening just after the banner
            try:
                graphiql = api.get("/graphql", headers={"Accept": "text/html"})
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert graphiql.status_code == 200 and "graphiql" in graphiql.text.lower()

        def gql(query: str) -> dict:
            body = api.post("/graphql", json={"query": query}).json()
            assert not body.get("errors"), body
            return body["data"]

        # The seeded demo: a sub-account with contacts; Olivia's Outlook mailbox in the sandbox.
        assert {"ann@client.example", "bob@client.example"} <= {
            e["node"]["email"] for e in gql("{ contacts(first: 10) { edges { node { email } } } }")["contacts"]["edges"]}
        # The seeded sub-account email provider: before any mailbox is connected, an email goes
        # out through it, and the sandbox's SMTP catcher (its URL is in the banner) lists it.
        catcher_url = re.search(r"SMTP catcher: (\S+)", banner).group(1)
        sent = gql('mutation { sendEmail(input: {to: ["ann@client.example"], subject: "Through the relay", '
                   'text: "hi", idempotencyKey: "dev-1"}) { message { route } userErrors { code } } }')["sendEmail"]
        assert sent == {"message": {"route": "SUB_ACCOUNT"}, "userErrors": []}
        trust = ssl.create_default_context(cafile=str(tmp_path / "dev/sandbox/ca-bundle.pem"))
        caught = httpx.get(catcher_url, params={"rcpt": "ann@client.example", "wait_for": 1, "timeout": 30},
                           verify=trust, timeout=40).json()
        assert [m["headers"]["subject"] for m in caught] == ["Through the relay"]
        assert caught[0]["envelope"]["mail_from"] == "news@demo-realty.example" and caught[0]["tls"] is True

        # The walkthrough of README and the banner: sign in, land on /connected, confirm.
        assert f'"redirectUri": "http://127.0.0.1:{port}/connected"' in banner
        url = gql('mutation { startEmailConnection(input: {provider: OUTLOOK, redirectUri: "http://127.0.0.1:%d/connected"}) '
                  "{ authorizationUrl userErrors { code } } }" % port)["startEmailConnection"]["authorizationUrl"]
        browser = httpx.Client(verify=ssl.create_default_context(cafile=str(tmp_path / "dev/sandbox/ca-bundle.pem")))
        chooser = browser.get(url)
        assert "olivia@demo-realty.example" in chooser.text  # the sandbox's account picker
        link = html.unescape(re.search(r'href="([^"]+)"', chooser.text).group(1))
        answer = browser.get(httpx.URL(url).join(link))  # Microsoft answers with an auto-posting form
        callback, fields = auto_post_form(answer)
        landed = httpx.post(callback, data=fields)
        assert landed.status_code == 303
        page = httpx.get(landed.headers["location"])
        flow_token = confirm_page_token(page, landed.headers["location"], port)
        assert gql("{ emailConnection { status } }")["emailConnection"] is None  # nothing before the confirmation
        done = gql('mutation { completeEmailConnection(input: {flowToken: "%s"}) { emailConnection { address } '
                   "userErrors { code } } }" % flow_token)["completeEmailConnection"]
        assert done == {"emailConnection": {"address": "olivia@demo-realty.example"}, "userErrors": []}
        for _ in range(100):
            conn = gql("{ emailConnection { status address } }")["emailConnection"]
            if conn and conn["status"] == "ACTIVE":
                break
            time.sleep(0.1)
        assert conn == {"status": "ACTIVE", "address": "olivia@demo-realty.example"}

        # Sam connects the seeded Gmail mailbox the same way (Google's account chooser).
        sam = re.search(r"Sam's token:\s+(\S+)", banner).group(1)
        api.headers["Authorization"] = f"Bearer {sam}"
        url = gql('mutation { startEmailConnection(input: {provider: GMAIL, redirectUri: "http://127.0.0.1:%d/connected"}) '
                  "{ authorizationUrl userErrors { code } } }" % port)["startEmailConnection"]["authorizationUrl"]
        chooser = browser.get(url)
        assert "sam@demo-realty.example" in chooser.text
        link = html.unescape(re.search(r'href="([^"]+)"', chooser.text).group(1))
        landed = httpx.get(browser.get(httpx.URL(url).join(link)).headers["location"])
        assert landed.status_code == 303
        flow_token = confirm_page_token(httpx.get(landed.headers["location"]), landed.headers["location"], port)
        done = gql('mutation { completeEmailConnection(input: {flowToken: "%s"}) { emailConnection { address } '
                   "userErrors { code } } }" % flow_token)["completeEmailConnection"]
        assert done == {"emailConnection": {"address": "sam@demo-realty.example"}, "userErrors": []}
        for _ in range(100):
            conn = gql("{ emailConnection { status provider } }")["emailConnection"]
            if conn and conn["status"] == "ACTIVE":
                break
            time.sleep(0.1)
        assert conn == {"status": "ACTIVE", "provider": "GMAIL"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # Stopping `emailsync dev` stops its sandbox too (no orphaned simulator keeps the port).
    for _ in range(50):
        try:
            httpx.get(f"https://127.0.0.1:{sandbox_port}/_sandbox/health", verify=False, timeout=0.5)
        except httpx.ConnectError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the sandbox outlived emailsync dev")
