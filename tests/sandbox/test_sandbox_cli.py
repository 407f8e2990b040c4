"""`python -m sandbox` prints where it listens and serves HTTPS with its CA."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx


def test_cli_prints_base_url_and_ca_bundle(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", "0", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=repo,
    )
    try:
        line = json.loads(process.stdout.readline())
        assert line["base_url"].startswith("https://127.0.0.1:") and not line["base_url"].endswith(":0")
        assert Path(line["ca_file"]).is_absolute() and Path(line["ca_file"]).name == "ca-bundle.pem"
        context = ssl.create_default_context(cafile=line["ca_file"])
        for _ in range(100):  # the socket is bound before the app finishes starting
            try:
                health = httpx.get(line["base_url"] + "/_sandbox/health", verify=context, timeout=2)
                break
            except httpx.HTTPError:
                import time

                time.sleep(0.05)
        assert health.json() == {"status": "ok"}
        ca_before = (tmp_path / "state" / "ca.pem").read_bytes()
    finally:
        process.terminate()
        process.wait(timeout=10)
    # a restart reuses the CA, so a configured bundle path stays valid
    again = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=repo,
    )
    try:
        json.loads(again.stdout.readline())
        assert (tmp_path / "state" / "ca.pem").read_bytes() == ca_before
    finally:
        again.terminate()
        again.wait(timeout=10)
