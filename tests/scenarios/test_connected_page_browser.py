"""The sign-in as a person does it in ``emailsync dev``, in a real browser (Chromium):
GraphiQL's saved Authorization header, the provider's sign-in page, the API's
``/connected`` page, its "Confirm" button; its own script runs under its CSP."""

from __future__ import annotations

import json
import uuid

import pytest
from playwright.async_api import Browser

from tests.support.chromium import chromium, guarded_page  # noqa: F401  (chromium is a fixture)
from tests.support.flows import CONNECTION, START, app_page
from tests.support.stack import Stack


@pytest.mark.parametrize("stack", ["sqlite-embedded"], indirect=True)
async def test_the_connected_page_confirms_with_the_graphiql_session(stack: Stack, chromium: Browser) -> None:  # noqa: F811
    tenant = await stack.seed_tenant(name="By hand")
    mailbox = f"by-hand-{uuid.uuid4().hex[:6]}@demo-realty.example"
    await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": "gmail", "address": mailbox, "name": "Owner"})
    data = await stack.graphql(START, {"input": {"provider": "GMAIL", "redirectUri": app_page(stack), "loginHint": mailbox}},
                               token=tenant.token)
    url = data["startEmailConnection"]["authorizationUrl"]

    async with guarded_page(chromium, ignore_https_errors=True) as (page, guard):
        # What GraphiQL on this origin leaves behind once the user typed the header in.
        await page.goto(app_page(stack))
        await page.evaluate("h => localStorage.setItem('graphiql:headers', h)",
                            json.dumps({"Authorization": f"Bearer {tenant.token}"}))
        await page.goto(url)  # the sandbox signs in (login_hint), then our callback, then /connected
        await page.wait_for_url(f"{app_page(stack)}?emailConnectionFlow=*")
        assert await page.locator("h1").text_content() == "Confirm the mailbox connection"
        assert (await stack.graphql(CONNECTION, token=tenant.token))["emailConnection"] is None
        assert await page.input_value("#auth") == tenant.token
        await page.click("button[type=submit]")
        result = page.locator("#result")
        await result.filter(has_text="Connected:").wait_for(timeout=15_000)
        assert mailbox in (await result.text_content() or "")
        assert guard.console_errors == [] and guard.page_errors == []
        guard.assert_stayed_local()
    conn = (await stack.graphql(CONNECTION, token=tenant.token))["emailConnection"]
    assert (conn["address"], conn["isCurrent"]) == (mailbox, True)
