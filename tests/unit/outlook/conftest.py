"""Fixtures for the Outlook adapter's unit tests: the published Graph samples."""

from __future__ import annotations

import pytest

from tests.support.samples import read_sample_bytes, sample_loader


@pytest.fixture(scope="session")
def sample():
    return sample_loader()


@pytest.fixture(scope="session")
def sample_bytes():
    return read_sample_bytes
