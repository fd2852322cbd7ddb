from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """Path to ../shared/data; tests that need a file skip naming it when it is absent (a user's clone)."""

    def get(relative: str) -> Path:
        path = SHARED_DATA / relative
        if not path.exists():
            pytest.skip(f"missing {path} (public data beside the repository; see README)")
        return path

    return get


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
