"""What pool and test-set loaders share: row ids, field checks, the load report, de-duplication."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ift_select.data.formats import Row
from ift_select.core.errors import DataError

OnInvalid = Literal["error", "skip"]
MAX_REASONS = 100  # skipped_reasons keeps the first 100; `skipped` counts them all
DETECT_ROWS = 1000  # formats and field names are detected from the first rows
ID_SEPARATOR = "\n\n"


def normalise(text: str) -> str:
    """Strip and collapse every run of whitespace (Unicode-aware) into one space."""
    return " ".join(text.split())


def row_id(*parts: str) -> str:
    """First 16 hex of sha256 over the normalised parts joined by a blank line ("\\n\\n").

    Normalising removes every newline from a part, so the separator cannot occur inside one and the join
    is unambiguous. Pool rows use (instruction, input, output)."""
    joined = ID_SEPARATOR.join(normalise(p) for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


class InvalidRow(Exception):
    """A row-level problem: an error naming file and line, or a counted skip with on_invalid='skip'."""


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()  # a field the record does not have (None is a field holding null)


def is_missing(value: Any) -> bool:
    """Absent, null or NaN."""
    return value is ABSENT or value is None or (isinstance(value, float) and math.isnan(value))


def check_text(value: Any, source: str, canonical: str, *, required: bool, nonblank: bool = False) -> str | None:
    """``value`` (read from field ``source``; ABSENT when the record lacks it) as a string. Absent, null or
    NaN -> InvalidRow when required ("is missing" / "is null"), else None; another type -> InvalidRow; with
    ``nonblank``, an empty or whitespace-only string -> InvalidRow. Messages name the file's own field (and
    the canonical one if different)."""
    label = repr(source) if source == canonical else f"{source!r} ({canonical})"
    if is_missing(value):
        if not required:
            return None
        raise InvalidRow(f"field {label} is " + ("missing" if value is ABSENT else
                                                 "null" if value is None else "null (NaN)"))
    if not isinstance(value, str):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        kind = "boolean" if isinstance(value, bool) else type(value).__name__
        raise InvalidRow(f"field {label} must be a string, got {kind} {shown}")
    if nonblank and not value.strip():
        raise InvalidRow(f"field {label} is " + ("whitespace only" if value else "empty"))
    return value


def first_record(path: str, rows: list[Row]) -> Row:
    """The first row holding a record; when none does, there is nothing to detect the format from, and
    the first row's problem is the file's error."""
    for row in rows:
        if row.record is not None:
            return row
    raise DataError(f"{path}:{rows[0].line}: {rows[0].error}")


def locate(line: int, reason: str) -> str:
    """A skip as listed to a user: ``line 4: <reason>``, or the reason alone when it names its line."""
    return reason if reason.startswith((f"line {line} ", f"lines {line}-")) else f"line {line}: {reason}"


@dataclass
class LoadReport:
    """What a loader read and what it did with it; ``to_dict()`` feeds metrics and the CLI's JSON line."""

    path: str
    format: str
    field_map: dict[str, str] = field(default_factory=dict)
    records: int = 0
    kept: int = 0
    duplicates: int = 0
    skipped: int = 0
    skipped_reasons: list[dict[str, Any]] = field(default_factory=list)
    wrapper_key: str | None = None  # the records were the list under this key of a one-key JSON object
    capped_at: int | None = None  # data.max_rows stopped reading before the end of the file

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Collector:
    """Accumulates valid rows, de-duplicating on ``id`` (first wins) and counting skips in the report.
    Rows are validated before de-duplication, so identical invalid rows are each a skip."""

    def __init__(self, report: LoadReport, on_invalid: OnInvalid) -> None:
        if on_invalid not in ("error", "skip"):
            raise DataError(f"data.on_invalid: {on_invalid!r} is not one of 'error', 'skip'")
        self.report = report
        self.on_invalid = on_invalid
        self.rows: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    def invalid(self, line: int, reason: str) -> None:
        if self.on_invalid == "error":
            raise DataError(f"{self.report.path}:{line}: {reason}")
        self.report.skipped += 1
        if len(self.report.skipped_reasons) < MAX_REASONS:
            self.report.skipped_reasons.append({"line": line, "reason": reason})

    def add(self, row: dict[str, Any]) -> None:
        if row["id"] in self._seen:
            self.report.duplicates += 1
            return
        self._seen.add(row["id"])
        self.rows.append(row)
        self.report.kept += 1

    def consume(self, rows: Iterable[Row], make: Callable[[dict[str, Any], int], dict[str, Any]],
                limit: int | None = None) -> list[dict[str, Any]]:
        """Validate (``make`` raises InvalidRow) and collect every row; stop once ``limit`` rows are kept."""
        for row in rows:
            if limit is not None and self.report.kept >= limit:
                self.report.capped_at = limit
                break
            self.report.records += 1
            try:
                if row.record is None:
                    raise InvalidRow(row.error or "unreadable record")
                self.add(make(row.record, row.line))
            except InvalidRow as exc:
                self.invalid(row.line, str(exc))
        return self.finish()

    def finish(self) -> list[dict[str, Any]]:
        if self.report.records == 0:
            raise DataError(f"{self.report.path}: file is empty (no records)")
        if not self.rows:
            raise DataError(f"{self.report.path}: no valid records ({self.report.skipped} skipped; "
                            f"first: {locate(**self.report.skipped_reasons[0])})")
        return self.rows

