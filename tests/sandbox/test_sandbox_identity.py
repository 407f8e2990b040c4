"""Microsoft identity platform simulation, driven by real msal over HTTPS."""

from __future__ import annotations

import base64
import hashlib
import secrets
import warnings
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
import pytest

from sandbox import SandboxServer

CLIENT_ID = "emailsync-test-client"  # the same client the `identity` fixture signs in with
CLIENT_SECRET = "test-secret"
REDIRECT_URI = "http://127.0.0.1:8000/oauth/outlook/callback"
SCOPES = ["Mail.ReadWrite", "Mail.Send", "User.Read"]


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _authorize_url(server: SandboxServer, **params: str) -> str:
    query = {
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "Mail.ReadWrite offline_access openid profile", "state": "st-1", **params,
    }
    return f"{server.base_url}/common/oauth2/v2.0/authorize?{urlencode(query)}"


def _token(server: SandboxServer, **form: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/common/oauth2/v2.0/token", data=form, verify=server.ssl_context())


@pytest.mark.parametrize("discovery", ["off", "sandbox-endpoint"])
def test_msal_auth_code_flow_and_refresh(sandbox_server, control, identity, discovery):
    control.post("/mailboxes", json={"provider": "outlook", "address": "Alice@Contoso.test", "name": "Alice Smith"})
    kwargs = {"instance_discovery": False} if discovery == "off" else {
        "instance_discovery": f"{sandbox_server.base_url}/common/discovery/instance"}
    result = identity.sign_in("alice@contoso.test", **kwargs)
    claims = result["id_token_claims"]
    assert claims["preferred_username"] == "Alice@Contoso.test"
    assert claims["aud"] == CLIENT_ID and claims["name"] == "Alice Smith"
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3600
    assert "offline_access" not in result["scope"]

    app = identity.msal_app(**kwargs)
    refreshed = app.acquire_token_by_refresh_token(result["refresh_token"], SCOPES)
    assert "access_token" in refreshed, refreshed
    assert refreshed["refresh_token"] != result["refresh_token"]  # rotated
    assert refreshed["access_token"] != result["access_token"]
    me = httpx.get(f"{sandbox_server.graph_base_url}/me", verify=sandbox_server.ssl_context(),
                   headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    assert me.status_code == 200 and me.json()["mail"] == "Alice@Contoso.test"


def test_id_token_is_signed_with_the_published_key(sandbox_server, control, identity):
    control.post("/mailboxes", json={"provider": "outlook", "address": "alice@contoso.test"})
    result = identity.sign_in("alice@contoso.test")
    config = httpx.get(f"{sandbox_server.authority}/v2.0/.well-known/openid-configuration", verify=sandbox_server.ssl_context()).json()
    assert config["authorization_endpoint"] == f"{sandbox_server.authority}/oauth2/v2.0/authorize"
    keys = jwt.PyJWKClient(config["jwks_uri"], ssl_context=__import__("ssl").create_default_context(cafile=sandbox_server.ca_file))
    signing_key = keys.get_signing_key_from_jwt(result["id_token"])
    claims = jwt.decode(result["id_token"], signing_key.key, algorithms=["RS256"], audience=CLIENT_ID)
    assert claims["tid"] and claims["oid"] and claims["iss"].endswith(f"/{claims['tid']}/v2.0")


def test_code_is_single_use_and_pkce_is_checked(sandbox_server, control, identity):
    control.post("/mailboxes", json={"provider": "outlook", "address": "alice@contoso.test"})
    verifier, challenge = _pkce()
    params = identity.follow_authorize(_authorize_url(
        sandbox_server, login_hint="alice@contoso.test", code_challenge=challenge, code_challenge_method="S256", nonce="n-1"))
    assert params["state"] == "st-1" and "session_state" in params
    common = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "redirect_uri": REDIRECT_URI, "code": params["code"]}

    bad = _token(sandbox_server, **common, code_verifier="x" * 50)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    assert bad.json()["error_description"].startswith("AADSTS50148") and bad.json()["error_codes"] == [50148]

    # A failed redemption burns the code, as Entra ID does.
    again = _token(sandbox_server, **common, code_verifier=verifier)
    assert again.status_code == 400 and again.json()["error_codes"] == [54005]

    params = identity.follow_authorize(_authorize_url(
        sandbox_server, login_hint="alice@contoso.test", code_challenge=challenge, code_challenge_method="S256", nonce="n-2"))
    ok = _token(sandbox_server, **{**common, "code": params["code"]}, code_verifier=verifier)
    assert ok.status_code == 200, ok.text
    assert jwt.decode(ok.json()["id_token"], options={"verify_signature": False})["nonce"] == "n-2"
    used = _token(sandbox_server, **{**common, "code": params["code"]}, code_verifier=verifier)
    assert used.status_code == 400 and used.json()["error"] == "invalid_grant"


def test_redirect_uri_and_client_secret_must_match(sandbox_server, control, identity):
    control.post("/mailboxes", json={"provider": "outlook", "address": "alice@contoso.test"})
    assert control.post("/clients", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).status_code == 201
    params = identity.follow_authorize(_authorize_url(sandbox_server, login_hint="alice@contoso.test"))
    base = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": params["code"]}
    wrong_secret = _token(sandbox_server, **base, client_secret="nope", redirect_uri=REDIRECT_URI)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    wrong_redirect = _token(sandbox_server, **base, client_secret=CLIENT_SECRET, redirect_uri="http://elsewhere/cb")
    assert wrong_redirect.status_code == 400 and wrong_redirect.json()["error_codes"] == [500112]


def test_unregistered_client_secret_is_pinned_on_first_use(sandbox_server, control):
    first = _token(sandbox_server, grant_type="refresh_token", client_id="new-app", client_secret="one", refresh_token="x")
    assert first.status_code == 400 and first.json()["error"] == "invalid_grant"  # client accepted, grant not
    other = _token(sandbox_server, grant_type="refresh_token", client_id="new-app", client_secret="two", refresh_token="x")
    assert other.status_code == 401 and other.json()["error"] == "invalid_client"


def test_unknown_login_hint_redirects_with_access_denied(sandbox_server, control, identity):
    control.post("/mailboxes", json={"provider": "gmail", "address": "g@gmail.test"})
    for hint in ("nobody@contoso.test", "g@gmail.test"):
        params = identity.follow_authorize(_authorize_url(sandbox_server, login_hint=hint))
        assert params["error"] == "access_denied" and params["state"] == "st-1"
        assert "code" not in params


def test_account_picker_without_login_hint(sandbox_server, control, identity):
    control.post("/mailboxes", json={"provider": "outlook", "address": "alice@contoso.test", "name": "Alice"})
    control.post("/mailboxes", json={"provider": "outlook", "address": "bob@contoso.test", "name": "Bob"})
    control.post("/mailboxes", json={"provider": "gmail", "address": "carol@gmail.test", "name": "Carol"})
    page = httpx.get(_authorize_url(sandbox_server), verify=sandbox_server.ssl_context())
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "alice@contoso.test" in page.text and "bob@contoso.test" in page.text
    assert "carol@gmail.test" not in page.text
    import re

    link = re.search(r'href="([^"]*bob%40contoso.test[^"]*)"', page.text).group(1).replace("&amp;", "&")
    params = identity.follow_authorize(sandbox_server.base_url + link)
    assert params["code"] and params["state"] == "st-1"


def test_revoke_breaks_refresh_and_graph_until_consent_again(sandbox_server, control, identity):
    control.post("/mailboxes", json={"provider": "outlook", "address": "alice@contoso.test"})
    result = identity.sign_in("alice@contoso.test")
    assert control.post("/mailboxes/alice@contoso.test/revoke").status_code == 200
    refreshed = identity.msal_app().acquire_token_by_refresh_token(result["refresh_token"], SCOPES)
    assert refreshed.get("error") == "invalid_grant" and "AADSTS50173" in refreshed["error_description"]
    me = httpx.get(f"{sandbox_server.graph_base_url}/me", verify=sandbox_server.ssl_context(),
                   headers={"Authorization": f"Bearer {result['access_token']}"})
    assert me.status_code == 401 and me.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in me.headers
    again = identity.sign_in("alice@contoso.test")  # the user consents again
    me = httpx.get(f"{sandbox_server.graph_base_url}/me", verify=sandbox_server.ssl_context(),
                   headers={"Authorization": f"Bearer {again['access_token']}"})
    assert me.status_code == 200


def test_expired_access_token_gets_401_and_refresh_recovers(sandbox_server, control, identity):
    control.post("/mailboxes", json={"provider": "outlook", "address": "alice@contoso.test"})
    result = identity.sign_in("alice@contoso.test")
    assert control.post("/mailboxes/alice@contoso.test/expire-tokens").json()["expired"] >= 1
    headers = {"Authorization": f"Bearer {result['access_token']}"}
    me = httpx.get(f"{sandbox_server.graph_base_url}/me", verify=sandbox_server.ssl_context(), headers=headers)
    assert me.status_code == 401 and "expired" in me.json()["error"]["message"]
    fresh = identity.msal_app().acquire_token_by_refresh_token(result["refresh_token"], SCOPES)
    me = httpx.get(f"{sandbox_server.graph_base_url}/me", verify=sandbox_server.ssl_context(),
                   headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert me.status_code == 200


def test_missing_or_garbage_token_is_401(sandbox_server, control):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        me = httpx.get(f"{sandbox_server.graph_base_url}/me", verify=sandbox_server.ssl_context(), headers=headers)
        assert me.status_code == 401 and me.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_access_token_ttl_is_configurable(sandbox_server, control, identity):
    control.patch("/config", json={"access_token_ttl": 120})
    control.post("/mailboxes", json={"provider": "outlook", "address": "alice@contoso.test"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert identity.sign_in("alice@contoso.test")["expires_in"] == 120


def test_unknown_tenant_fails_discovery(sandbox_server, control):
    bad = httpx.get(f"{sandbox_server.base_url}/not_a_tenant/v2.0/.well-known/openid-configuration", verify=sandbox_server.ssl_context())
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_tenant"
    guid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    ok = httpx.get(f"{sandbox_server.base_url}/{guid}/v2.0/.well-known/openid-configuration", verify=sandbox_server.ssl_context())
    assert ok.status_code == 200 and ok.json()["issuer"].endswith(f"/{guid}/v2.0")
    assert urlsplit(ok.json()["token_endpoint"]).path == f"/{guid}/oauth2/v2.0/token"
    assert dict(parse_qsl("a=b"))  # keep imports honest


def test_strict_refresh_rotation_rejects_a_reused_refresh_token(sandbox_server, control, identity):
    control.post("/mailboxes", json={"provider": "outlook", "address": "alice@contoso.test"})
    result = identity.sign_in("alice@contoso.test")
    app = identity.msal_app()
    assert "access_token" in app.acquire_token_by_refresh_token(result["refresh_token"], SCOPES)
    assert "access_token" in app.acquire_token_by_refresh_token(result["refresh_token"], SCOPES)  # Entra ID default
    control.patch("/config", json={"strict_refresh_rotation": True})
    reused = app.acquire_token_by_refresh_token(result["refresh_token"], SCOPES)
    assert reused.get("error") == "invalid_grant"
