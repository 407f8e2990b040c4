"""The published provider samples, for the adapters' unit tests: copied into the
repository (``tests/samples/provider-samples``, origins in its ``SOURCES.md``) so the
suite reads nothing outside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "provider-samples"


def load_sample(name: str) -> Any:
    """A JSON sample, parsed."""
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def sample_loader() -> Any:
    """What the ``sample`` fixtures hand out (after checking the samples are there)."""
    assert SAMPLES.is_dir(), f"provider samples not found at {SAMPLES}"
    return load_sample


def read_sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def read_sample_text(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")
