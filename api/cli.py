"""``emailsync``: dev, serve, worker, migrate, sandbox, token."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cryptography.fernet import Fernet


def _settings():  # type: ignore[no-untyped-def]
    from sync_engine.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def _refuse_unsafe_exposure(settings) -> None:  # type: ignore[no-untyped-def]
    """A service with a public URL must not run on development secrets."""
    from sync_engine.settings import exposure_problems

    problems = exposure_problems(settings)
    if problems:
        print("emailsync: refusing to start with a non-loopback EMAILSYNC_PUBLIC_BASE_URL:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2)


def cmd_migrate(_args: argparse.Namespace) -> None:
    from db.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    print("database is up to date")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from api.app import create_app

    settings = _settings()
    _refuse_unsafe_exposure(settings)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


def cmd_worker(_args: argparse.Namespace) -> None:
    import logging

    from arq.worker import run_worker

    logging.basicConfig(level=os.environ.get("EMAILSYNC_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from sync_engine.worker import WorkerSettings

    _refuse_unsafe_exposure(_settings())
    run_worker(WorkerSettings)  # type: ignore[arg-type]


def cmd_sandbox(args: argparse.Namespace) -> None:
    os.execv(sys.executable, [sys.executable, "-m", "sandbox", "--host", args.host, "--port", str(args.port),
                              "--state-dir", args.state_dir, "--smtp-port", str(args.smtp_port),
                              "--smtps-port", str(args.smtps_port)])


def cmd_token(args: argparse.Namespace) -> None:
    from api.auth import mint_dev_token

    print(mint_dev_token(_settings(), user_id=args.user_id, sub_account_id=args.sub_account_id, role=args.role))


def cmd_dev(args: argparse.Namespace) -> None:
    from api.devtools.devstack import run_dev_stack

    run_dev_stack(Path(args.state_dir), host=args.host, port=args.port, sandbox_port=args.sandbox_port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="emailsync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="API + worker + sandbox on SQLite with demo data")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--sandbox-port", type=int, default=8443)
    dev.add_argument("--state-dir", default=".emailsync-dev")
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser("serve", help="the API (GraphQL, webhooks, OAuth callbacks)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="the sync engine's job worker (needs EMAILSYNC_REDIS_URL)").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    sandbox = sub.add_parser("sandbox", help="the Microsoft/Google simulator and an SMTP catcher")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8443)
    sandbox.add_argument("--state-dir", default=".sandbox")
    sandbox.add_argument("--smtp-port", type=int, default=2525, help="SMTP catcher, plain + STARTTLS (0: a free port)")
    sandbox.add_argument("--smtps-port", type=int, default=2465, help="SMTP catcher, implicit TLS (0: a free port)")
    sandbox.set_defaults(func=cmd_sandbox)

    token = sub.add_parser("token", help="mint a development bearer token")
    token.add_argument("--user-id", required=True)
    token.add_argument("--sub-account-id", required=True)
    token.add_argument("--role", default="admin", choices=["admin", "user"])
    token.set_defaults(func=cmd_token)

    sub.add_parser("genkey", help="print a new encryption key for EMAILSYNC_ENCRYPTION_KEYS").set_defaults(
        func=lambda _a: print(Fernet.generate_key().decode())
    )

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
