"""What a load did, for people: ``inspect_file`` (``ift-select data inspect``) and ``summary_line`` (the
line ``prepare`` prints on stderr)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ift_select.data.common import LoadReport, OnInvalid, locate
from ift_select.data.pool import load_pool
from ift_select.data.testsets import load_test_set
from ift_select.core.errors import DataError


def inspect_file(path: str | Path, kind: Literal["pool", "test"] = "pool", format: str = "auto",
                 on_invalid: OnInvalid = "error") -> dict[str, Any]:
    """Load ``path`` as a pool or a test set and return its report plus the resulting columns:
    {path, kind, format, field_map, records, kept, duplicates, skipped, skipped_reasons, wrapper_key,
    capped_at, columns}."""
    if kind == "pool":
        frame, report = load_pool(path, format=format, on_invalid=on_invalid)
    elif kind == "test":
        frame, report = load_test_set(path, name=Path(path).stem, format=format, on_invalid=on_invalid)
    else:
        raise DataError(f"kind {kind!r} is not one of 'pool', 'test'")
    return {"kind": kind, **report.to_dict(), "columns": list(frame.columns)}


def counts(report: LoadReport) -> str:
    """``297 kept, 3 duplicates, 1 skipped (first: line 4: ...)``."""
    text = f"{report.kept} kept, {report.duplicates} duplicates, {report.skipped} skipped"
    if report.skipped:
        text += f" (first: {locate(**report.skipped_reasons[0])})"
    if report.capped_at is not None:
        text += f", stopped at data.max_rows = {report.capped_at}"
    return text


def summary_line(stage: str, label: str, report: LoadReport, metrics_file: str) -> str:
    """One line for stderr: what a load kept, merged and skipped (the reasons of every skip: ``metrics_file``)."""
    return f"{stage}: {label}: {counts(report)}" + (f" [every skip: {metrics_file}]" if report.skipped else "")
