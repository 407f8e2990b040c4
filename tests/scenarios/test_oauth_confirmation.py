"""A mailbox sign-in completes only when the CRM session that started it confirms it.

Driven as browsers and apps do it, against the sandbox's real OAuth flows: an attacker
who starts a sign-in and gets a victim to open its authorization URL ends up with
nothing (nor does the victim), a flow token works once and not after its lifetime, and
``redirectUri`` never points outside the allowed origins.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, or_, select, update

from api.auth import mint_dev_token
from db.base import utcnow
from db.models import EmailConnection, OAuthFlow, User
from sync_engine.crypto import sha256_hex
from sync_engine.services.connections import FLOW_TOKEN_LIFETIME
from tests.support.browser import sign_in_until
from tests.support.flows import (
    CONNECTION,
    START,
    app_page,
    browser_sign_in,
    complete_sign_in,
    connect_mailbox,
)
from tests.support.stack import Stack, Tenant, trust

NOT_FOUND = [{"code": "NOT_FOUND", "message": "sign-in not found", "field": "flowToken"}]


async def colleague_of(stack: Stack, tenant: Tenant) -> Tenant:
    """Another user of the same sub-account."""
    email = f"colleague-{uuid.uuid4().hex[:8]}@biz.example"
    async with stack.runtime.sessions.begin() as session:
        user = User(sub_account_id=tenant.sub_account_id, email=email, email_normalized=email, name="Colleague",
                    role="admin")
        session.add(user)
        await session.flush()
        user_id = user.id
    token = mint_dev_token(stack.settings, user_id=str(user_id), sub_account_id=str(tenant.sub_account_id), role="admin")
    return Tenant(tenant.sub_account_id, user_id, email, tenant.bcc_address, token)


async def add_mailbox(stack: Stack, provider: str, address: str) -> None:
    response = await stack.sandbox.post("/_sandbox/mailboxes", json={"provider": provider.lower(), "address": address,
                                                                     "name": "Owner"})
    assert response.status_code == 201, response.text


async def start(stack: Stack, tenant: Tenant, provider: str, mailbox: str, return_to: str) -> str:
    data = await stack.graphql(START, {"input": {"provider": provider, "redirectUri": return_to, "loginHint": mailbox}},
                               token=tenant.token)
    assert data["startEmailConnection"]["userErrors"] == [], data
    return data["startEmailConnection"]["authorizationUrl"]


async def connections_of(stack: Stack, *, user_ids: list[uuid.UUID], address: str) -> int:
    async with stack.runtime.sessions() as session:
        return await session.scalar(select(func.count()).select_from(EmailConnection).where(
            or_(EmailConnection.user_id.in_(user_ids), func.lower(EmailConnection.address) == address.lower())))


@pytest.mark.parametrize("victim_is", ["in another sub-account", "a colleague"])
async def test_a_victim_who_opens_an_attacker_s_sign_in_connects_nothing(stack: Stack, victim_is: str) -> None:
    attacker = await stack.seed_tenant(name="Mallory")
    victim = (await stack.seed_tenant(name="Victim") if victim_is == "in another sub-account"
              else await colleague_of(stack, attacker))
    provider = "OUTLOOK"
    victim_mailbox = f"victim-{uuid.uuid4().hex[:6]}@demo-realty.example"
    await add_mailbox(stack, provider, victim_mailbox)

    # The attacker starts a sign-in and gets the victim to open its authorization URL; the
    # victim signs in to their own mailbox and their browser comes back to the app.
    url = await start(stack, attacker, provider, victim_mailbox, app_page(stack))
    flow_token = await browser_sign_in(stack, url, app_page(stack))
    assert await connections_of(stack, user_ids=[attacker.user_id, victim.user_id], address=victim_mailbox) == 0

    # The victim's app confirms with the victim's credentials: not theirs, so not found.
    assert await complete_sign_in(stack, victim, flow_token) == {"emailConnection": None, "userErrors": NOT_FOUND}
    assert (await stack.graphql(CONNECTION, token=victim.token))["emailConnection"] is None
    # And the flow is gone: even if the token leaked to the attacker, it connects nothing.
    assert await complete_sign_in(stack, attacker, flow_token) == {"emailConnection": None, "userErrors": NOT_FOUND}
    assert (await stack.graphql(CONNECTION, token=attacker.token))["emailConnection"] is None
    assert await connections_of(stack, user_ids=[attacker.user_id, victim.user_id], address=victim_mailbox) == 0


async def test_someone_else_holding_a_user_s_flow_token_cannot_use_it(stack: Stack) -> None:
    user = await stack.seed_tenant(name="Owner")
    other = await stack.seed_tenant(name="Other")
    mailbox = f"owner-{uuid.uuid4().hex[:6]}@demo-realty.example"
    await add_mailbox(stack, "GMAIL", mailbox)
    flow_token = await browser_sign_in(stack, await start(stack, user, "GMAIL", mailbox, app_page(stack)), app_page(stack))

    assert await complete_sign_in(stack, other, flow_token) == {"emailConnection": None, "userErrors": NOT_FOUND}
    assert (await stack.graphql(CONNECTION, token=other.token))["emailConnection"] is None
    # Presented once by anyone, the flow is spent: the owner starts again rather than risk it.
    assert await complete_sign_in(stack, user, flow_token) == {"emailConnection": None, "userErrors": NOT_FOUND}
    assert await connections_of(stack, user_ids=[user.user_id, other.user_id], address=mailbox) == 0


async def test_a_flow_token_works_once_and_not_after_its_lifetime(stack: Stack) -> None:
    tenant = await stack.seed_tenant(name="Once")
    first, second = (f"{n}-{uuid.uuid4().hex[:6]}@demo-realty.example" for n in ("first", "second"))
    for mailbox in (first, second):
        await add_mailbox(stack, "OUTLOOK", mailbox)

    # Unknown tokens answer exactly like other users' ones: nothing to probe.
    assert await complete_sign_in(stack, tenant, "x" * 43) == {"emailConnection": None, "userErrors": NOT_FOUND}

    flow_token = await browser_sign_in(stack, await start(stack, tenant, "OUTLOOK", first, app_page(stack)),
                                       app_page(stack))
    async with stack.runtime.sessions() as session:
        flow = await session.scalar(select(OAuthFlow).where(OAuthFlow.flow_token_hash == sha256_hex(flow_token)))
    assert flow is not None and flow.expires_at <= utcnow() + FLOW_TOKEN_LIFETIME <= utcnow() + timedelta(minutes=10)
    done = await complete_sign_in(stack, tenant, flow_token)
    assert done["userErrors"] == [] and done["emailConnection"]["address"] == first
    assert await complete_sign_in(stack, tenant, flow_token) == {"emailConnection": None, "userErrors": NOT_FOUND}

    # A sign-in confirmed too late does nothing: the first mailbox stays the connected one.
    late_token = await browser_sign_in(stack, await start(stack, tenant, "OUTLOOK", second, app_page(stack)),
                                       app_page(stack))
    async with stack.runtime.sessions.begin() as session:
        await session.execute(update(OAuthFlow).where(OAuthFlow.flow_token_hash == sha256_hex(late_token))
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await complete_sign_in(stack, tenant, late_token) == {"emailConnection": None, "userErrors": NOT_FOUND}
    conn = (await stack.graphql(CONNECTION, token=tenant.token))["emailConnection"]
    assert (conn["address"], conn["isCurrent"]) == (first, True)


SPA = "http://spa.example:5173"


@pytest.mark.stack_settings(allowed_origins=[SPA])
async def test_redirect_uris_only_go_to_allowed_origins(stack: Stack) -> None:
    tenant = await stack.seed_tenant(name="Redirects")
    mailbox = f"spa-{uuid.uuid4().hex[:6]}@demo-realty.example"
    await add_mailbox(stack, "GMAIL", mailbox)
    for bad in [
        "https://evil.example/settings",
        f"{SPA}@evil.example/",
        "http://spa.example@evil.example:5173/",
        f"{SPA}\\@evil.example/",
        "//evil.example/settings",
        "http:\\\\evil.example/",
        "javascript:alert(1)//http://spa.example:5173/",
        "data:text/html,<script>alert(1)</script>",
        "http://spa.example:5174/settings",
        "https://spa.example:5173/settings",
        "http://spa.example.evil.example:5173/",
        "http://spа.example:5173/",  # a Cyrillic a
        "http://spa%2eexample:5173/",
        f"{SPA}/settings\r\nSet-Cookie: a=b",
        f"{SPA}/set tings",
    ]:
        data = await stack.graphql(START, {"input": {"provider": "GMAIL", "redirectUri": bad}}, token=tenant.token)
        payload = data["startEmailConnection"]
        assert payload["authorizationUrl"] is None, bad
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID_REDIRECT_URI", "redirectUri")], bad

    # The allowed SPA gets the browser back with a flow token it then confirms.
    return_to = f"{SPA}/settings/email?tab=mailbox#connected"
    url = await start(stack, tenant, "GMAIL", mailbox, return_to)
    async with httpx.AsyncClient(verify=trust(stack.ca_file), timeout=30) as browser:
        landed = await sign_in_until(browser, url, SPA)
    location = urlsplit(landed.headers["location"])
    assert (location.scheme, location.netloc, location.path, location.fragment) == (
        "http", "spa.example:5173", "/settings/email", "connected")
    query = parse_qs(location.query)
    assert query["tab"] == ["mailbox"] and "emailConnection" not in query
    done = await complete_sign_in(stack, tenant, query["emailConnectionFlow"][0])
    assert done["userErrors"] == [] and done["emailConnection"]["address"] == mailbox


async def test_update_email_is_confirmed_the_same_way(stack: Stack) -> None:
    """updateEmailConnection's sign-in leaves the old mailbox current until it is confirmed."""
    tenant = await stack.seed_tenant(name="Switch later")
    old, new = (f"{n}-{uuid.uuid4().hex[:6]}@demo-realty.example" for n in ("old", "new"))
    await connect_mailbox(stack, tenant, "OUTLOOK", old)
    await add_mailbox(stack, "OUTLOOK", new)
    update_mutation = """mutation ($input: StartEmailConnectionInput!) { updateEmailConnection(input: $input) {
      authorizationUrl userErrors { code } } }"""
    refused = await stack.graphql(update_mutation, {"input": {"provider": "OUTLOOK", "redirectUri": "https://evil.example/"}},
                                  token=tenant.token)
    assert refused["updateEmailConnection"] == {"authorizationUrl": None, "userErrors": [{"code": "INVALID_REDIRECT_URI"}]}
    data = await stack.graphql(update_mutation, {"input": {"provider": "OUTLOOK", "redirectUri": app_page(stack),
                                                           "loginHint": new}}, token=tenant.token)
    flow_token = await browser_sign_in(stack, data["updateEmailConnection"]["authorizationUrl"], app_page(stack))
    assert (await stack.graphql(CONNECTION, token=tenant.token))["emailConnection"]["address"] == old
    done = await complete_sign_in(stack, tenant, flow_token)
    assert done["userErrors"] == [] and (done["emailConnection"]["address"], done["emailConnection"]["isCurrent"]) == (new, True)
    assert (await stack.graphql(CONNECTION, token=tenant.token))["emailConnection"]["address"] == new
