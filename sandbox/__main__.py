"""``python -m sandbox --host 127.0.0.1 --port 8443 --state-dir .sandbox``

Serves HTTPS and the SMTP catcher, and prints one JSON line on stdout once bound:
``{"base_url": "https://127.0.0.1:8443", "ca_file": "/abs/.sandbox/ca-bundle.pem",
"smtp_port": 2525, "smtps_port": 2465, "smtp_username": "...", "smtp_password": "..."}``.
"""

from __future__ import annotations

import argparse
import json
import sys

from sandbox.context import SandboxConfig
from sandbox.server import SandboxServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="emailsync provider sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    parser.add_argument("--smtp-port", type=int, default=0, help="SMTP catcher, plain + STARTTLS (0: a free port)")
    parser.add_argument("--smtps-port", type=int, default=0, help="SMTP catcher, implicit TLS (0: a free port)")
    parser.add_argument("--state-dir", default=".sandbox", help="where the CA and certificates are kept")
    parser.add_argument("--webhook-allow-http", action=argparse.BooleanOptionalAction, default=True,
                        help="allow http:// notification URLs (the app serves plain HTTP locally)")
    parser.add_argument("--access-token-ttl", type=int, default=3600)
    parser.add_argument("--graph-page-size", type=int, default=10, help="Graph's default delta page size")
    parser.add_argument("--client", action="append", default=[], metavar="ID=SECRET",
                        help="register an OAuth client (otherwise the first secret a client uses is pinned)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    config = SandboxConfig(
        webhook_allow_http=args.webhook_allow_http,
        access_token_ttl=args.access_token_ttl,
        graph_default_page_size=args.graph_page_size,
    )
    server = SandboxServer(
        host=args.host, port=args.port, state_dir=args.state_dir, config=config, log_level=args.log_level,
        smtp_port=args.smtp_port, smtps_port=args.smtps_port,
    )
    for entry in args.client:
        client_id, _, secret = entry.partition("=")
        server.sandbox.tokens.register_client(client_id, secret, permanent=True)
    server.bind()
    # The catcher's development credentials are fixed and documented: no secret is printed.
    banner = {
        "base_url": server.base_url,
        "ca_file": server.ca_file,
        "smtp_port": server.smtp_port,
        "smtps_port": server.smtps_port,
        "smtp_username": server.smtp_credentials.username,
        "smtp_password": server.smtp_credentials.password,
    }
    print(json.dumps(banner), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
