"""`emailsync serve` / `worker` refuse development secrets behind a public URL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from sync_engine.settings import DEV_JWT_KEY, Settings, exposure_problems

KEY = Fernet.generate_key().decode()


def test_loopback_may_use_development_secrets() -> None:
    for url in ("http://127.0.0.1:8000", "http://localhost:9000", "http://[::1]:8000"):
        assert exposure_problems(Settings(public_base_url=url, encryption_keys=SecretStr(""))) == []


def test_a_public_url_needs_real_secrets() -> None:
    public = "https://sync.example.com"
    problems = exposure_problems(Settings(public_base_url=public, encryption_keys=SecretStr("")))
    assert [p.split(" ")[0] for p in problems] == ["EMAILSYNC_JWT_KEY", "EMAILSYNC_ENCRYPTION_KEYS"]
    assert exposure_problems(Settings(public_base_url=public, jwt_key=SecretStr("a-real-secret-" + "x" * 32),
                                      encryption_keys=SecretStr(KEY))) == []


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_the_commands_refuse_to_start(command: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAILSYNC_")}
    env.update(EMAILSYNC_PUBLIC_BASE_URL="https://sync.example.com", EMAILSYNC_ENCRYPTION_KEYS=KEY,
               EMAILSYNC_REDIS_URL="redis://127.0.0.1:1/0")
    done = subprocess.run([sys.executable, "-m", "emailsync.cli", command], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "EMAILSYNC_JWT_KEY" in done.stderr and "EMAILSYNC_ENCRYPTION_KEYS" not in done.stderr
    assert DEV_JWT_KEY not in done.stderr + done.stdout and KEY not in done.stderr + done.stdout
