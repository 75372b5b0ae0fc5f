"""Shared fixtures: the real-data folder (../shared/data, skipped when absent) and an isolated cache."""

import os
import tempfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Decoded-dataset caches go to one temporary folder per test session, never to the user's cache.
os.environ.setdefault("NOISEMOD_CACHE", tempfile.mkdtemp(prefix="noisemod-test-cache-"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline datasets folder; tests using it are skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA
