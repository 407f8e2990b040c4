"""A local certificate authority so clients can talk HTTPS to the sandbox.

msal refuses non-https authorities, so the sandbox always serves TLS. The CA is
kept in the state directory and reused across restarts, which keeps a
configured bundle path valid. ``ca-bundle.pem`` is the public roots (certifi)
plus our CA: pointing ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` at it lets the same
process still reach real HTTPS services.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme

SERVER_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path  # our CA alone
    ca_bundle: Path  # certifi roots + our CA
    cert_file: Path  # server certificate chain
    key_file: Path


def _load_or_create_ca(state_dir: Path) -> trustme.CA:
    cert_path, key_path = state_dir / "ca.pem", state_dir / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        try:
            return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
        except Exception:  # unreadable or foreign files: start a fresh CA
            pass
    ca = trustme.CA(organization_name="emailsync sandbox")
    ca.cert_pem.write_to_path(str(cert_path))
    ca.private_key_pem.write_to_path(str(key_path))
    key_path.chmod(0o600)
    return ca


def prepare(state_dir: str | Path, extra_names: tuple[str, ...] = ()) -> TlsFiles:
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    ca = _load_or_create_ca(state)
    names = tuple(dict.fromkeys((*SERVER_NAMES, *extra_names)))
    server_cert = ca.issue_cert(*names)
    files = TlsFiles(
        ca_file=state / "ca.pem",
        ca_bundle=state / "ca-bundle.pem",
        cert_file=state / "server.pem",
        key_file=state / "server-key.pem",
    )
    server_cert.cert_chain_pems[0].write_to_path(str(files.cert_file))
    for extra in server_cert.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert_file), append=True)
    server_cert.private_key_pem.write_to_path(str(files.key_file))
    files.key_file.chmod(0o600)
    bundle = Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + files.ca_file.read_bytes()
    files.ca_bundle.write_bytes(bundle)
    return files
