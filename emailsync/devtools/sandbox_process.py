"""Run the provider sandbox as a child process and read where it listens."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SandboxProcess:
    process: subprocess.Popen[str]
    base_url: str
    ca_file: str
    # The SMTP catcher (plain + STARTTLS port) and the development credentials it accepts.
    smtp_port: int
    smtp_username: str
    smtp_password: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when ``emailsync dev`` exits, however it exits
    (uvicorn re-raises SIGTERM after shutdown, which skips ``finally`` blocks)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_sandbox(state_dir: Path, port: int = 0, host: str = "127.0.0.1") -> SandboxProcess:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--host", host, "--port", str(port), "--state-dir", str(state_dir),
         "--smtp-port", "0", "--smtps-port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 -- runs before any thread is started (dev CLI)
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=5)
        raise RuntimeError(f"the sandbox did not start (exit code {proc.returncode})")
    info = json.loads(line)
    return SandboxProcess(proc, info["base_url"], info["ca_file"], info["smtp_port"], info["smtp_username"],
                          info["smtp_password"])


def sandbox_settings_env(base_url: str, ca_file: str) -> dict[str, str]:
    """The ``EMAILSYNC_*`` variables that point every provider endpoint at the sandbox."""
    return {
        "EMAILSYNC_CA_BUNDLE": ca_file,
        "EMAILSYNC_MICROSOFT_AUTHORITY": f"{base_url}/common",
        "EMAILSYNC_GRAPH_BASE_URL": f"{base_url}/v1.0",
        "EMAILSYNC_GOOGLE_AUTH_URI": f"{base_url}/o/oauth2/v2/auth",
        "EMAILSYNC_GOOGLE_TOKEN_URI": f"{base_url}/token",
        "EMAILSYNC_GOOGLE_REVOKE_URI": f"{base_url}/revoke",
        "EMAILSYNC_GOOGLE_CERTS_URL": f"{base_url}/oauth2/v1/certs",
        "EMAILSYNC_GMAIL_BASE_URL": base_url,
    }
