"""The training pool: any supported file -> rows of the pool contract.

Pool row columns, in order: ``id``, ``instruction``, ``input``, ``output``, ``source``, ``source_line``, then
every other field of the file as-is (e.g. ``category``, ``_flaw``). An extra field whose name is one of the
contract's columns (e.g. an ``id`` of the source file) is kept as ``orig_<name>``.

- ``id``: ``row_id(instruction, input, output)`` (ift_select.data.common): sha256 over the three fields,
  each stripped with whitespace runs collapsed, joined by "\\n\\n"; first 16 hex digits.
- ``source``: the path as given; ``source_line``: see ift_select.data.formats (line for JSONL and CSV with
  the header as line 1, line of the opening ``{`` for JSON lists, 1-based row index for Parquet).
- ``input`` is "" when absent or null. An empty-string ``output`` is valid (it is a string; graders score it);
  an empty or whitespace-only ``instruction`` is not.
- Files may be gzip-compressed (``pool.jsonl.gz``); a ``.json`` object whose only key holds the list of
  records (``{"data": [...]}``) is read as that list and the key is reported as ``wrapper_key``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.data.car_text import split_src
from ift_select.data.common import (ABSENT, DETECT_ROWS, Collector, InvalidRow, LoadReport, OnInvalid, check_text,
                                    first_record, row_id)
from ift_select.data.files import container_for
from ift_select.data.formats import Row, open_rows
from ift_select.data.jsonshape import wrapper_hint
from ift_select.core.errors import DataError

CANONICAL = ("instruction", "input", "output")
CONTRACT = ("id", "instruction", "input", "output", "source", "source_line")
POOL_FORMATS = ("auto", "alpaca_json", "jsonl", "csv", "parquet", "dolly")

Splitter = Callable[[dict[str, Any]], dict[str, Any]]

def _split_car_src(record: dict[str, Any]) -> dict[str, Any]:
    """CaR's CSVs pack a pair into ``src``: "Instruction: ... [Input: ...] Response: ..."."""
    src = record.get("src")
    parts = split_src(src) if isinstance(src, str) else None
    if parts is None or parts[2] is None:
        raise InvalidRow("field 'src' is not of the form 'Instruction: ... [Input: ...] Response: ...'")
    rest = {k: v for k, v in record.items() if k != "src"}
    return {**rest, **dict(zip(("instruction", "input", "output"), parts))}


@dataclass(frozen=True)
class Schema:
    """How a file names the canonical fields. ``keys``: fields whose presence identifies it."""

    name: str
    fields: dict[str, str]
    keys: tuple[str, ...]
    split: Splitter | None = None  # for files that pack all fields into one


ALPACA = Schema("alpaca", {"instruction": "instruction", "input": "input", "output": "output"},
                ("instruction", "output"))
DOLLY = Schema("dolly", {"instruction": "instruction", "input": "context", "output": "response"},
               ("instruction", "response"))
CAR_SRC = Schema("car_src", {"instruction": "src", "input": "src", "output": "src"}, ("src",), _split_car_src)
SCHEMAS = (ALPACA, DOLLY, CAR_SRC)  # detection order

# format -> (container, forced schema or None); container None = from the extension
FORCED: dict[str, tuple[str | None, Schema | None]] = {
    "auto": (None, None), "alpaca_json": ("json", None), "jsonl": ("jsonl", None), "csv": ("csv", None),
    "parquet": ("parquet", None), "dolly": (None, DOLLY),
}


def _resolve_schema(path: str, rows: list[Row], forced: Schema | None,
                    field_map: dict[str, str] | None) -> Schema:
    """Field names from the union of the first rows' keys."""
    first = first_record(path, rows)
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row.record or ()))
    unknown = sorted(set(field_map or ()) - set(CANONICAL))
    if unknown:
        raise DataError(f"data.field_map: {unknown[0]!r} is not a pool field (use: {', '.join(CANONICAL)})")
    if field_map:
        base = forced or next((s for s in SCHEMAS[:2] if all(k in keys for k in s.keys)), ALPACA)
        fields = {**base.fields, **field_map}
        for canonical in ("instruction", "output"):
            if fields[canonical] not in keys:
                raise DataError(f"{path}: data.field_map.{canonical} = {fields[canonical]!r}, but the file has "
                                f"no such field (found: {', '.join(keys) or 'none'})")
        return Schema("field_map", fields, ())
    schema = forced or next((s for s in SCHEMAS if all(k in keys for k in s.keys)), None)
    if schema is None:
        hint = wrapper_hint(first.record or {})
        if hint is not None:
            raise DataError(f"{path}:{first.line}: {hint}")
        raise DataError(f"{path}: cannot find the instruction/output fields (found: {', '.join(keys) or 'none'}); "
                        "set data.field_map, e.g. {instruction: question, output: answer}")
    return schema


def _pool_row(record: dict[str, Any], schema: Schema, source: str, line: int) -> dict[str, Any]:
    names = schema.fields  # where each field is read; messages name schema.fields (the file's own names)
    if schema.split is not None:
        record = schema.split(record)
        names = {c: c for c in CANONICAL}
    instruction, text_input, output = (
        check_text(record.get(names[c], ABSENT), schema.fields[c], c, required=c != "input",
                   nonblank=c == "instruction") or ""
        for c in CANONICAL)
    used = set(names.values())
    row = {"id": row_id(instruction, text_input, output), "instruction": instruction, "input": text_input,
           "output": output, "source": source, "source_line": line}
    for key, value in record.items():
        if key not in used:
            row[f"orig_{key}" if key in CONTRACT else key] = value
    return row


def _format_name(container: str, schema: Schema) -> str:
    if schema is DOLLY:
        return "dolly"
    return {"json_list": "alpaca_json"}.get(container, container)


def load_pool(path: str | Path, format: str = "auto", field_map: dict[str, str] | None = None,
              on_invalid: OnInvalid = "error", max_rows: int | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Load a pool file into the pool contract (see the module docstring) and report what happened.

    ``format`` forces a container or schema (one of POOL_FORMATS); ``field_map`` ({canonical: source
    field}) overrides detected field names. ``max_rows`` stops once that many unique rows are kept
    (``records`` then counts only the rows read and ``capped_at`` says so). Invalid rows raise DataError
    naming file and line, or with ``on_invalid="skip"`` are skipped and counted with their reasons."""
    source = str(path)
    path = Path(path)
    if format not in FORCED:
        raise DataError(f"data.format: {format!r} is not one of {', '.join(POOL_FORMATS)}")
    if max_rows is not None and max_rows < 1:
        raise DataError(f"data.max_rows: {max_rows} must be at least 1 (or null for no cap)")
    container, forced = FORCED[format]
    opened = open_rows(path, container or container_for(path), " or set data.format: alpaca_json")
    head = list(islice(opened.rows, DETECT_ROWS))
    if not head:
        raise DataError(f"{source}: file is empty (no records)")
    schema = _resolve_schema(source, head, forced, field_map)
    report = LoadReport(path=source, format=_format_name(opened.container, schema), field_map=dict(schema.fields),
                        wrapper_key=opened.wrapper_key)
    records = Collector(report, on_invalid).consume(
        chain(head, opened.rows), lambda record, line: _pool_row(record, schema, source, line), max_rows)
    extras = list(dict.fromkeys(k for r in records for k in r if k not in CONTRACT))
    frame = pd.DataFrame.from_records(records, columns=[*CONTRACT, *extras])
    frame["source_line"] = frame["source_line"].astype("int64")
    return frame, report
