"""``inspect_file``: what a loader makes of a file, for ``ift-select data inspect`` and for debugging params."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ift_select.data.common import OnInvalid
from ift_select.data.pool import load_pool
from ift_select.data.testsets import load_test_set
from ift_select.core.errors import DataError


def inspect_file(path: str | Path, kind: Literal["pool", "test"] = "pool", format: str = "auto",
                 on_invalid: OnInvalid = "error") -> dict[str, Any]:
    """Load ``path`` as a pool or a test set and return its report plus the resulting columns:
    {path, kind, format, field_map, records, kept, duplicates, skipped, skipped_reasons, columns}."""
    if kind == "pool":
        frame, report = load_pool(path, format=format, on_invalid=on_invalid)
    elif kind == "test":
        if on_invalid != "error":
            raise DataError("--on-invalid skip applies to pools only; test sets must load whole")
        frame, report = load_test_set(path, name=Path(path).stem, format=format)
    else:
        raise DataError(f"kind {kind!r} is not one of 'pool', 'test'")
    return {"kind": kind, **report.to_dict(), "columns": list(frame.columns)}
