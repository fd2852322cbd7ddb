"""Data loading: pools (Alpaca JSON, JSONL, CSV, Parquet, Dolly, field maps; each also .gz) and public test sets.

Public API: ``load_pool``, ``load_test_set``, ``inspect_file``, ``summary_line``, ``LoadReport``, ``row_id``.
Contracts (columns, ids, line numbers) are documented in ``pool``, ``testsets`` and ``formats``. They are
imported on first use, so a stage that only reads prepared data (``data.prepared``) loads none of them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"LoadReport": "common", "normalise": "common", "row_id": "common", "POOL_FORMATS": "pool",
            "load_pool": "pool", "inspect_file": "summary", "summary_line": "summary", "TEST_FORMATS": "testsets",
            "load_test_set": "testsets"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ift_select.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ift_select.data.{_EXPORTS[name]}"), name)
