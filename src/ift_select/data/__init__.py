"""Data loading: pools (Alpaca JSON, JSONL, CSV, Parquet, Dolly, field maps; each also .gz) and public test sets.

Public API: ``load_pool``, ``load_test_set``, ``inspect_file``, ``summary_line``, ``LoadReport``, ``row_id``.
Contracts (columns, ids, line numbers) are documented in ``pool``, ``testsets`` and ``formats``.
"""

from ift_select.data.common import LoadReport, normalise, row_id
from ift_select.data.pool import POOL_FORMATS, load_pool
from ift_select.data.summary import inspect_file, summary_line
from ift_select.data.testsets import TEST_FORMATS, load_test_set

__all__ = ["POOL_FORMATS", "TEST_FORMATS", "LoadReport", "inspect_file", "load_pool", "load_test_set",
           "normalise", "row_id", "summary_line"]
