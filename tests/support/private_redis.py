"""A redis-server of a test's own, so stopping and restarting it disturbs nothing else."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.stack import free_port


def _start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False).stdout.strip() == b"PONG":
            return proc
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


@dataclass
class PrivateRedis:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def start(self) -> None:
        if self.proc is None:
            self.proc = _start_redis(self.port, self.workdir)

    def restart(self) -> None:
        self.stop()  # returns once the server has exited and let go of its port
        self.start()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    port = free_port()
    redis = PrivateRedis(port, tmp_path, _start_redis(port, tmp_path))
    yield redis
    redis.stop()
