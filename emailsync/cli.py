"""``emailsync``: dev, serve, worker, migrate, sandbox, token."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from cryptography.fernet import Fernet

if TYPE_CHECKING:
    from sync_engine.settings import Settings


def _fail(message: str) -> NoReturn:
    """Stop with one line on stderr (no traceback) and a non-zero exit code."""
    print(f"emailsync: {message}", file=sys.stderr)
    raise SystemExit(2)


def _settings() -> Settings:
    from pydantic import ValidationError

    from sync_engine.settings import get_settings

    get_settings.cache_clear()
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "EMAILSYNC_" + str(first["loc"][0]).upper() if first.get("loc") else "a setting"
        _fail(f"invalid {name}: {first['msg']}")


def _preflight(check: Callable[[Settings], None], settings: Settings) -> None:
    """Run a start-up check of api/preflight.py; its failure is one line, not a traceback."""
    from api.preflight import PreflightError

    try:
        check(settings)
    except PreflightError as exc:
        _fail(str(exc))


def _refuse_unsafe_exposure(settings: Settings) -> None:
    """A service with a public URL must not run on development secrets."""
    from sync_engine.settings import exposure_problems

    problems = exposure_problems(settings)
    if problems:
        print("emailsync: refusing to start with a non-loopback EMAILSYNC_PUBLIC_BASE_URL:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2)


def cmd_migrate(_args: argparse.Namespace) -> None:
    from api.preflight import check_migrate
    from db.migrate import upgrade

    settings = _settings()
    _preflight(check_migrate, settings)
    upgrade(settings.database_url)
    print("database is up to date")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from api.observability import uvicorn_log_options
    from api.preflight import check_serve
    from emailsync.asgi import create_app
    from sync_engine.logging_setup import configure_logging

    settings = _settings()
    _refuse_unsafe_exposure(settings)
    _preflight(check_serve, settings)
    configure_logging(settings)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, **uvicorn_log_options(settings))


def cmd_worker(_args: argparse.Namespace) -> None:
    from api.preflight import check_worker
    from sync_engine.logging_setup import configure_logging
    from sync_engine.worker_metrics import start_worker_metrics

    settings = _settings()
    _refuse_unsafe_exposure(settings)
    _preflight(check_worker, settings)  # before emailsync.worker, which reads the Redis URL on import
    configure_logging(settings)
    try:
        start_worker_metrics(settings)
    except OSError as exc:
        _fail(f"cannot serve worker metrics on {settings.worker_metrics_host}:{settings.worker_metrics_port} "
              f"({exc.strerror or type(exc).__name__}): check EMAILSYNC_WORKER_METRICS_PORT")
    from emailsync import worker

    worker.run_forever()


def cmd_sandbox(args: argparse.Namespace) -> None:
    os.execv(sys.executable, [sys.executable, "-m", "sandbox", "--host", args.host, "--port", str(args.port),
                              "--state-dir", args.state_dir, "--smtp-port", str(args.smtp_port),
                              "--smtps-port", str(args.smtps_port)])


def cmd_token(args: argparse.Namespace) -> None:
    from api.auth import mint_dev_token

    print(mint_dev_token(_settings(), user_id=args.user_id, sub_account_id=args.sub_account_id, role=args.role))


def cmd_dev(args: argparse.Namespace) -> None:
    from emailsync.devtools.devstack import run_dev_stack

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
