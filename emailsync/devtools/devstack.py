"""``emailsync dev``: sandbox + API + in-process worker on SQLite, with demo data."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cryptography.fernet import Fernet

from emailsync.devtools.sandbox_process import sandbox_settings_env, start_sandbox
from emailsync.devtools.seed import DEMO_USERS, DemoRelay, seed_demo


def _dev_key(state_dir: Path) -> str:
    key_file = state_dir / "encryption.key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def run_dev_stack(state_dir: Path, *, host: str, port: int, sandbox_port: int) -> None:
    import uvicorn

    state_dir.mkdir(parents=True, exist_ok=True)
    sandbox = start_sandbox(state_dir / "sandbox", port=sandbox_port)
    try:
        env = sandbox_settings_env(sandbox.base_url, sandbox.ca_file)
        env.setdefault("EMAILSYNC_DATABASE_URL", f"sqlite+aiosqlite:///{(state_dir / 'emailsync.db').resolve()}")
        env["EMAILSYNC_PUBLIC_BASE_URL"] = f"http://{host}:{port}"
        env["EMAILSYNC_ENCRYPTION_KEYS"] = os.environ.get("EMAILSYNC_ENCRYPTION_KEYS") or _dev_key(state_dir)
        env["EMAILSYNC_INTROSPECTION"] = "true"  # GraphiQL loads the schema by introspection
        os.environ.update({k: v for k, v in env.items() if k != "EMAILSYNC_DATABASE_URL"})
        os.environ.setdefault("EMAILSYNC_DATABASE_URL", env["EMAILSYNC_DATABASE_URL"])
        os.environ.pop("EMAILSYNC_REDIS_URL", None)  # embedded queue and memory broadcast

        from api.auth import mint_dev_token
        from db.migrate import upgrade
        from emailsync.asgi import create_app
        from sync_engine.settings import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        from api.observability import uvicorn_log_options
        from sync_engine.logging_setup import configure_logging

        configure_logging(settings)  # EMAILSYNC_LOG_FORMAT / EMAILSYNC_LOG_LEVEL, as for `serve`
        upgrade(settings.database_url)
        push_endpoint = f"{settings.public_base_url}/webhooks/gmail"
        demo = asyncio.run(seed_demo(
            settings.database_url, sandbox.base_url, sandbox.ca_file, gmail_topic=settings.gmail_pubsub_topic,
            gmail_push_endpoint=push_endpoint, gmail_push_audience=settings.gmail_push_audience or push_endpoint,
            gmail_push_service_account=settings.gmail_push_service_account,
            relay=DemoRelay(sandbox.smtp_port, sandbox.smtp_username, sandbox.smtp_password,
                            settings.encryption_keys.get_secret_value())))
        tokens = {email: mint_dev_token(settings, user_id=demo.users[email], sub_account_id=demo.sub_account_id, role=role)
                  for email, _name, role, _provider in DEMO_USERS}
        _print_banner(host, port, sandbox.base_url, tokens, demo.bcc_sync_address)
        uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_log_options(settings))
    finally:
        sandbox.stop()


def _print_banner(host: str, port: int, sandbox_url: str, tokens: dict[str, str], bcc: str) -> None:
    (owner, owner_token), (seller, seller_token) = tokens.items()
    print(
        f"""
emailsync dev is running
  GraphiQL:     http://{host}:{port}/graphql
  Bearer token: {owner_token}
                ({owner}, admin; GraphiQL > Headers: {{"Authorization": "Bearer <token>"}})
  Sam's token:  {seller_token}
                ({seller}, user; connects the demo Gmail mailbox)
  Sandbox:      {sandbox_url}/_sandbox/mailboxes  (Microsoft + Google simulator)
  SMTP catcher: {sandbox_url}/_sandbox/smtp/messages  (what the sub-account's email provider sent)
  Demo users:   {", ".join(f"{e} ({p})" for e, _n, _r, p in DEMO_USERS)}
  BCC address:  {bcc}
Sender rules: query senderDomainRules. sendWorkflowEmail (and sendEmail before a mailbox is
connected) goes out through the sub-account's email provider: the SMTP catcher above.
Connect Olivia's Outlook mailbox: run the startEmailConnection mutation with
  {{"input": {{"provider": "OUTLOOK", "redirectUri": "http://{host}:{port}/connected", "loginHint": "{DEMO_USERS[0][0]}"}}}}
(Sam's Gmail mailbox: provider GMAIL with Sam's token), open the authorizationUrl it returns in a
browser and sign in. You land on http://{host}:{port}/connected with a flow token: nothing is
connected until the same user confirms it there (its button) or in GraphiQL with
  mutation {{ completeEmailConnection(input: {{flowToken: "<token>"}}) {{ emailConnection {{ address status }} userErrors {{ code }} }} }}
""",
        flush=True,
    )
