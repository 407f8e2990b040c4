"""Google OAuth 2.0 simulation: authorization code + PKCE over HTTPS, the
token endpoint's grants and errors, revocation, id_token verification with
google-auth, and google-auth's Credentials refreshing against the sandbox."""

from __future__ import annotations

import time

import google.auth.exceptions
import google.auth.transport.requests
import httpx
import pytest
import requests
from google.oauth2 import id_token
from google.oauth2.credentials import Credentials

from tests.sandbox.google.conftest import CLIENT_ID, CLIENT_SECRET, MODIFY, REDIRECT_URI, pkce


def _request(server) -> google.auth.transport.requests.Request:
    session = requests.Session()
    session.verify = server.ca_file
    return google.auth.transport.requests.Request(session=session)


def _redeem(google_oauth, code: str, verifier: str, **form: str) -> httpx.Response:
    return google_oauth.token(**{"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                                 "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code_verifier": verifier,
                                 **form})


def test_code_flow_with_pkce_and_verified_id_token(sandbox_server, control, google_oauth):
    control.post("/mailboxes", json={"provider": "gmail", "address": "Sam@Gmail.test", "name": "Sam Seller"})
    verifier, challenge = pkce()
    query = google_oauth.redirect(google_oauth.authorize_url(challenge, login_hint="sam@gmail.test"))
    assert query["state"] == "st-42" and query["code"].startswith("4/0A")
    assert query["iss"] == "https://accounts.google.com"
    assert query["scope"].split() == ["openid", "https://www.googleapis.com/auth/userinfo.email", MODIFY]

    response = _redeem(google_oauth, query["code"], verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("no-cache")
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "refresh_token", "scope", "token_type", "id_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert body["access_token"].startswith("ya29.") and body["refresh_token"].startswith("1//")

    for certs in ("/oauth2/v1/certs", "/oauth2/v3/certs"):
        claims = id_token.verify_token(body["id_token"], _request(sandbox_server), audience=CLIENT_ID,
                                       certs_url=sandbox_server.base_url + certs)
        assert claims["iss"] == "https://accounts.google.com" and claims["aud"] == CLIENT_ID
        assert claims["email"] == "Sam@Gmail.test" and claims["email_verified"] is True
        assert claims["sub"].isdigit() and len(claims["sub"]) == 21
    with pytest.raises(ValueError):
        id_token.verify_token(body["id_token"], _request(sandbox_server), audience="someone-else",
                              certs_url=sandbox_server.base_url + "/oauth2/v1/certs")

    # The code is single use, whatever happens on the first redemption.
    again = _redeem(google_oauth, query["code"], verifier)
    assert again.status_code == 400 and again.json() == {"error": "invalid_grant", "error_description": "Bad Request"}


def test_token_endpoint_errors(control, google_oauth):
    control.post("/mailboxes", json={"provider": "gmail", "address": "sam@gmail.test"})

    def fresh_code() -> tuple[str, str]:
        verifier, challenge = pkce()
        return google_oauth.redirect(google_oauth.authorize_url(challenge, login_hint="sam@gmail.test"))["code"], verifier

    code, _ = fresh_code()
    wrong = _redeem(google_oauth, code, "not-the-verifier-" + "x" * 40)
    assert wrong.status_code == 400 and wrong.json()["error_description"] == "Invalid code verifier."
    code, verifier = fresh_code()
    missing = _redeem(google_oauth, code, verifier, code_verifier="")
    assert missing.json() == {"error": "invalid_grant", "error_description": "Missing code verifier."}
    code, verifier = fresh_code()
    mismatch = _redeem(google_oauth, code, verifier, redirect_uri="http://127.0.0.1:9/elsewhere")
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "redirect_uri_mismatch"
    code, verifier = fresh_code()
    bad_secret = _redeem(google_oauth, code, verifier, client_secret="wrong")
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    malformed = _redeem(google_oauth, "4/0Anot-a-code", "x")
    assert malformed.json() == {"error": "invalid_grant", "error_description": "Malformed auth code."}
    grant = google_oauth.token(grant_type="password", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"


def test_authorize_chooser_unknown_account_and_refresh_token_rules(sandbox_server, control, google_oauth):
    control.post("/mailboxes", json={"provider": "gmail", "address": "sam@gmail.test", "name": "Sam Seller"})
    control.post("/mailboxes", json={"provider": "outlook", "address": "olly@contoso.test"})
    chooser = httpx.get(google_oauth.authorize_url(), verify=sandbox_server.ssl_context())
    assert chooser.status_code == 200 and "sam@gmail.test" in chooser.text and "olly@contoso.test" not in chooser.text
    for unknown in ("nobody@gmail.test", "olly@contoso.test"):
        denied = google_oauth.redirect(google_oauth.authorize_url(login_hint=unknown))
        assert denied == {"state": "st-42", "error": "access_denied"}

    # access_type defaults to online: no refresh token.
    online = google_oauth.sign_in("sam@gmail.test", access_type="online")
    assert "refresh_token" not in online
    first = google_oauth.sign_in("sam@gmail.test", prompt="")
    assert "refresh_token" in first  # first offline consent
    again = google_oauth.sign_in("sam@gmail.test", prompt="")
    assert "refresh_token" not in again  # Google only re-issues with prompt=consent
    forced = google_oauth.sign_in("sam@gmail.test", prompt="consent")
    assert forced["refresh_token"] != first["refresh_token"]


def test_google_auth_credentials_refresh_against_the_sandbox(sandbox_server, gmail):
    sam = gmail()
    control_ttl = httpx.patch(f"{sandbox_server.base_url}/_sandbox/config", json={"access_token_ttl": 1},
                              verify=sandbox_server.ssl_context())
    assert control_ttl.status_code == 200
    credentials = Credentials(
        token=None, refresh_token=sam.tokens["refresh_token"], token_uri=sandbox_server.base_url + "/token",
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, scopes=[MODIFY],
    )
    credentials.refresh(_request(sandbox_server))
    assert credentials.token.startswith("ya29.") and credentials.token != sam.tokens["access_token"]
    assert credentials.refresh_token == sam.tokens["refresh_token"]  # Google keeps the same refresh token
    profile = httpx.get(f"{sandbox_server.base_url}/gmail/v1/users/me/profile", verify=sandbox_server.ssl_context(),
                        headers={"Authorization": f"Bearer {credentials.token}"})
    assert profile.status_code == 200 and profile.json()["emailAddress"] == "sam@gmail.test"
    time.sleep(1.1)
    expired = httpx.get(f"{sandbox_server.base_url}/gmail/v1/users/me/profile", verify=sandbox_server.ssl_context(),
                        headers={"Authorization": f"Bearer {credentials.token}"})
    assert expired.status_code == 401


def test_revoke_endpoint_revokes_the_whole_grant(sandbox_server, gmail, google_oauth, discovery):
    sam = gmail()
    revoked = httpx.post(f"{sandbox_server.base_url}/revoke", data={"token": sam.tokens["access_token"]},
                         verify=sandbox_server.ssl_context())
    assert revoked.status_code == 200
    unauthorized = sam.client.get("/profile")
    assert unauthorized.status_code == 401
    error = unauthorized.json()["error"]
    assert error["status"] == "UNAUTHENTICATED" and error["errors"][0]["reason"] == "authError"
    assert unauthorized.headers["www-authenticate"].startswith('Bearer realm="https://accounts.google.com/"')
    refresh = google_oauth.token(grant_type="refresh_token", refresh_token=sam.tokens["refresh_token"],
                                 client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert refresh.status_code == 400
    assert refresh.json() == {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    twice = httpx.post(f"{sandbox_server.base_url}/revoke?token={sam.tokens['refresh_token']}",
                       verify=sandbox_server.ssl_context())
    assert twice.status_code == 400 and twice.json()["error"] == "invalid_token"


def test_consent_revoked_in_the_account(sandbox_server, control, gmail):
    sam = gmail()
    assert control.post("/mailboxes/sam@gmail.test/revoke").status_code == 200
    assert sam.client.get("/profile").status_code == 401
    credentials = Credentials(
        token=None, refresh_token=sam.tokens["refresh_token"], token_uri=sandbox_server.base_url + "/token",
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match=r"invalid_grant: Token has been expired or revoked\."):
        credentials.refresh(_request(sandbox_server))


def test_missing_token_and_other_users_mailbox(sandbox_server, gmail, control):
    sam = gmail()
    control.post("/mailboxes", json={"provider": "gmail", "address": "other@gmail.test"})
    missing = httpx.get(f"{sandbox_server.base_url}/gmail/v1/users/me/profile", verify=sandbox_server.ssl_context())
    assert missing.status_code == 401 and missing.json()["error"]["errors"][0]["reason"] == "required"
    by_address = sam.client.get(f"{sandbox_server.base_url}/gmail/v1/users/SAM@gmail.test/profile")
    assert by_address.status_code == 200
    other = sam.client.get(f"{sandbox_server.base_url}/gmail/v1/users/other@gmail.test/profile")
    assert other.status_code == 403 and other.json()["error"]["status"] == "PERMISSION_DENIED"
