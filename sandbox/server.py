"""Run the sandbox over HTTPS with uvicorn, in a background thread or in the
foreground (CLI), with the SMTP catcher's two listeners (STARTTLS and implicit
TLS) on the same host. Tests use ``SandboxServer`` as a context manager::

    with SandboxServer() as server:
        httpx.get(server.base_url + "/_sandbox/health", verify=server.ca_file)
        server.smtp_port, server.smtps_port, server.smtp_credentials
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sandbox import tls
from sandbox.app import build_app
from sandbox.context import Sandbox, SandboxConfig
from sandbox.smtp import IMPLICIT, STARTTLS, SmtpCredentials, smtp_catcher


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class SandboxServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | Path | None = None,
        config: SandboxConfig | None = None,
        log_level: str = "warning",
        smtp_port: int = 0,
        smtps_port: int = 0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.requested_smtp_ports = {STARTTLS: smtp_port, IMPLICIT: smtps_port}
        self._tempdir = None if state_dir else tempfile.TemporaryDirectory(prefix="emailsync-sandbox-")
        self.state_dir = Path(state_dir or self._tempdir.name).resolve()  # type: ignore[union-attr]
        self.tls = tls.prepare(self.state_dir, extra_names=(host,) if host not in ("0.0.0.0", "::") else ())
        self.sandbox = Sandbox(config, ca_bundle=str(self.tls.ca_bundle))
        self.app = build_app(self.sandbox)
        self.smtp = smtp_catcher(self.sandbox)
        self.log_level = log_level
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # -- addresses ------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("[::1]" if self.host == "::" else self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    @property
    def ca_file(self) -> str:
        """certifi roots + the sandbox CA: for REQUESTS_CA_BUNDLE, SSL_CERT_FILE, httpx verify=."""
        return str(self.tls.ca_bundle)

    @property
    def authority(self) -> str:
        return f"{self.base_url}/common"

    @property
    def graph_base_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def smtp_port(self) -> int | None:
        """The catcher's plain SMTP port, which offers STARTTLS (after ``bind``/``start``)."""
        return self.smtp.port(STARTTLS)

    @property
    def smtps_port(self) -> int | None:
        """The catcher's implicit-TLS port."""
        return self.smtp.port(IMPLICIT)

    @property
    def smtp_credentials(self) -> SmtpCredentials:
        """(username, password) the catcher accepts now."""
        return self.smtp.credentials

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the sandbox (for httpx ``verify=``)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def control_client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base_url}/_sandbox", verify=self.ssl_context(), **kwargs)

    # -- lifecycle ------------------------------------------------------------
    def uvicorn_server(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app,
            ssl_certfile=str(self.tls.cert_file),
            ssl_keyfile=str(self.tls.key_file),
            log_level=self.log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        return uvicorn.Server(config)

    def bind(self) -> socket.socket:
        """Bind every listener, so all ports are known before serving; returns the HTTPS one."""
        self._socket = bind_socket(self.host, self.requested_port)
        self.port = self._socket.getsockname()[1]
        self.smtp.listen_on(
            {name: bind_socket(self.host, port) for name, port in self.requested_smtp_ports.items()},
            cert_file=str(self.tls.cert_file),
            key_file=str(self.tls.key_file),
        )
        return self._socket

    def start(self, timeout: float = 15.0) -> SandboxServer:
        sock = self.bind()
        self._server = self.uvicorn_server()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="sandbox-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the CLI); call bind() first to learn the port."""
        sock = self._socket or self.bind()
        self._server = self.uvicorn_server()
        self._server.run(sockets=[sock])

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=1)
            if self._thread.is_alive() and self._server is not None and self.sandbox.loop is not None:
                # Idle keep-alive TLS connections of clients that are never closed
                # (msal's requests session) would hold a graceful shutdown for its
                # full timeout: drop them so the app still shuts down cleanly.
                server = self._server

                def abort_connections() -> None:
                    for connection in list(server.server_state.connections):
                        transport = getattr(connection, "transport", None)
                        if transport is not None:
                            transport.abort()

                self.sandbox.loop.call_soon_threadsafe(abort_connections)
                self._thread.join(timeout=10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.smtp.release()

    def close(self) -> None:
        self.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
