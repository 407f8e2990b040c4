"""``emailsync dev``: sandbox + API + in-process worker on SQLite, with demo data."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cryptography.fernet import Fernet

from api.devtools.sandbox_process import sandbox_settings_env, start_sandbox
from api.devtools.seed import DEMO_USERS, seed_demo


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
        os.environ.update({k: v for k, v in env.items() if k != "EMAILSYNC_DATABASE_URL"})
        os.environ.setdefault("EMAILSYNC_DATABASE_URL", env["EMAILSYNC_DATABASE_URL"])
        os.environ.pop("EMAILSYNC_REDIS_URL", None)  # embedded queue and memory broadcast

        from api.app import create_app
        from api.auth import mint_dev_token
        from db.migrate import upgrade
        from sync_engine.settings import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        upgrade(settings.database_url)
        demo = asyncio.run(seed_demo(settings.database_url, sandbox.base_url, sandbox.ca_file))
        owner_email = DEMO_USERS[0][0]
        token = mint_dev_token(settings, user_id=demo.users[owner_email], sub_account_id=demo.sub_account_id, role="admin")
        _print_banner(host, port, sandbox.base_url, token, demo.bcc_sync_address)
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
    finally:
        sandbox.stop()


def _print_banner(host: str, port: int, sandbox_url: str, token: str, bcc: str) -> None:
    print(
        f"""
emailsync dev is running
  GraphiQL:     http://{host}:{port}/graphql
  Bearer token: {token}
                (GraphiQL > Headers: {{"Authorization": "Bearer <token>"}})
  Sandbox:      {sandbox_url}/_sandbox/mailboxes  (Microsoft + Google simulator)
  Demo users:   {", ".join(f"{e} ({p})" for e, _n, _r, p in DEMO_USERS)}
  BCC address:  {bcc}
Connect Olivia's Outlook mailbox: run the startEmailConnection mutation with
  {{"input": {{"provider": "OUTLOOK", "redirectUri": "http://{host}:{port}/healthz", "loginHint": "{DEMO_USERS[0][0]}"}}}}
and open the authorizationUrl it returns in a browser.
""",
        flush=True,
    )
