"""Test-wide settings: no hub calls ever, a private cache folder, and the shared real-image data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Without these a stray hub call retries for about 46 s before failing; tests must never reach a hub.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"
# Generated synthetic images go to a private folder, not the user's ~/.cache.
os.environ.setdefault("MJBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="mjbench-test-cache-"))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real MJ-Bench images beside the checkout (../shared/data); skipped where absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test images not found at {SHARED_DATA} (only present in the project workspace)")
    return SHARED_DATA
