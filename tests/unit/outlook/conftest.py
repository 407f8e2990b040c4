"""Fixtures for the Outlook adapter's unit tests: the published Graph samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# ../shared/provider-samples beside the repository (as laid out for sessions and CI).
SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "provider-samples"


def _load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def sample():
    assert SAMPLES.is_dir(), f"provider samples not found at {SAMPLES}"
    return _load


@pytest.fixture(scope="session")
def sample_bytes():
    def read(name: str) -> bytes:
        return (SAMPLES / name).read_bytes()

    return read
