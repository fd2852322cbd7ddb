"""Test sets: the public sets' own files -> rows of the test-item contract.

Columns: ``id``, ``test_set``, ``instruction``, ``input`` ("" when absent), ``reference`` (None when absent),
``category`` (None when absent), ``source_line`` (as for pools: the JSONL line, or the line of the
record's opening ``{`` in a JSON list). ``id`` is ``<name>/<the file's own id>`` when the format has one
(Vicuna/MT-Bench ``question_id``, Koala/Self-Instruct ``id``, WizardLM ``idx``, generic ``id``), else
``<name>/<row_id(instruction, input)>``. Items with the same id are kept once and counted as duplicates.

Files are read and validated as pools are (``ift_select.data.formats``): JSON Lines, a JSON list (or a
one-key wrapper object), CSV or Parquet by extension (an unknown extension is read as JSON), each also
gzip-compressed; an empty or whitespace-only instruction, a null field, a NUL byte or a trailing comma is an
error naming file and line, or a counted skip with ``on_invalid="skip"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.data.common import (ABSENT, DETECT_ROWS, Collector, InvalidRow, LoadReport, OnInvalid, check_text,
                                    first_record, is_missing, row_id)
from ift_select.data.files import container_for
from ift_select.data.formats import Row, open_rows
from ift_select.data.jsonshape import wrapper_hint
from ift_select.core.errors import DataError

COLUMNS = ("id", "test_set", "instruction", "input", "reference", "category", "source_line")


@dataclass(frozen=True)
class TestFormat:
    """Where a test set keeps each field: dotted paths into a record (``turns.0``: first list item)."""

    name: str
    keys: tuple[str, ...]          # detection: every record of this format has these fields
    instruction: str
    input: str | None = None
    reference: str | None = None
    category: str | None = None
    item_id: str | None = None

    def paths(self) -> dict[str, str]:
        """{canonical: path} for the fields this format has (``id``: the file's own item id)."""
        named = {"instruction": self.instruction, "input": self.input, "reference": self.reference,
                 "category": self.category, "id": self.item_id}
        return {k: v for k, v in named.items() if v is not None}


# Detection order matters: the first format whose keys a record has wins; `generic` comes last.
TEST_FORMATS = (
    TestFormat("mtbench", ("question_id", "turns"), "turns.0", reference="reference.0", category="category",
               item_id="question_id"),
    TestFormat("vicuna", ("question_id", "text"), "text", category="category", item_id="question_id"),
    TestFormat("koala", ("id", "prompt"), "prompt", item_id="id"),
    TestFormat("wizardlm", ("Instruction", "Skill"), "Instruction", category="Skill", item_id="idx"),
    TestFormat("selfinstruct", ("instruction", "instances"), "instruction", input="instances.0.input",
               reference="instances.0.output", category="motivation_app", item_id="id"),
    TestFormat("coachlm", ("instruction", "reference response"), "instruction", input="input",
               reference="reference response"),
    TestFormat("pandalm", ("instruction", "motivation_app"), "instruction", input="input",
               category="motivation_app"),
    TestFormat("generic", ("instruction",), "instruction", input="input", reference="reference",
               category="category", item_id="id"),
)
BY_NAME = {f.name: f for f in TEST_FORMATS}


def pick(record: Any, path: str) -> Any:
    """``record`` at a dotted path (``instances.0.output``); ABSENT when any step is absent."""
    value = record
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return ABSENT
    return value


def _detect(path: str, rows: list[Row]) -> TestFormat:
    row = first_record(path, rows)
    first = row.record or {}
    for fmt in TEST_FORMATS:
        if all(k in first for k in fmt.keys):
            return fmt
    hint = wrapper_hint(first)
    if hint is not None:
        raise DataError(f"{path}:{row.line}: {hint}")
    raise DataError(f"{path}: not a known test-set format (found fields: {', '.join(first) or 'none'}); expected "
                    f"one of {', '.join(f.name for f in TEST_FORMATS)} (generic needs 'instruction')")


def _item(record: dict[str, Any], fmt: TestFormat, name: str, line: int) -> dict[str, Any]:
    paths = fmt.paths()
    flat = {canonical: pick(record, path) for canonical, path in paths.items()}
    instruction = check_text(flat["instruction"], paths["instruction"], "instruction", required=True,
                             nonblank=True) or ""
    text_input = check_text(flat.get("input"), paths.get("input", "input"), "input", required=False) or ""
    reference = check_text(flat.get("reference"), paths.get("reference", "reference"), "reference",
                           required=False)
    category, item_id = flat.get("category"), flat.get("id")
    if isinstance(category, (dict, list)):
        raise InvalidRow(f"field {paths['category']!r} (category) must be a string, got {type(category).__name__}")
    if is_missing(item_id) or item_id == "":
        item_id = row_id(instruction, text_input)
    return {"id": f"{name}/{item_id}", "test_set": name, "instruction": instruction, "input": text_input,
            "reference": reference, "category": None if is_missing(category) else str(category),
            "source_line": line}


def load_test_set(path: str | Path, name: str, format: str = "auto",
                  on_invalid: OnInvalid = "error") -> tuple[pd.DataFrame, LoadReport]:
    """Load a test set in one of TEST_FORMATS, detected from the first record's fields unless ``format``
    names one. Invalid items raise DataError naming file and line, or with ``on_invalid="skip"`` are
    skipped and counted with their reasons."""
    source = str(path)
    if format != "auto" and format not in BY_NAME:
        raise DataError(f"data.test_sets.{name}.format: {format!r} is not one of auto, {', '.join(BY_NAME)}")
    opened = open_rows(Path(path), container_for(Path(path), default="json"))
    head = list(islice(opened.rows, DETECT_ROWS))
    if not head:
        raise DataError(f"{source}: file is empty (no records)")
    fmt = BY_NAME[format] if format != "auto" else _detect(source, head)
    report = LoadReport(path=source, format=fmt.name, field_map=fmt.paths(), wrapper_key=opened.wrapper_key)
    items = Collector(report, on_invalid).consume(chain(head, opened.rows),
                                                  lambda record, line: _item(record, fmt, name, line))
    frame = pd.DataFrame.from_records(items, columns=list(COLUMNS))
    frame["source_line"] = frame["source_line"].astype("int64")
    for optional in ("reference", "category"):  # object dtype keeps None (a str column would turn it to NaN)
        frame[optional] = pd.Series([item[optional] for item in items], dtype=object)
    return frame, report
