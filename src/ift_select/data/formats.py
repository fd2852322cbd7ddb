"""File containers: turn a file into numbered raw records, whatever the field names.

Every reader yields ``Row(line, record, error)``: ``record`` is the raw mapping, or ``error`` says why the
row is unusable (a row-level problem the caller may skip with ``on_invalid: skip``). File-level problems
(missing or empty file, bytes that are not UTF-8, a malformed JSON list) raise ``DataError`` at once.

What ``line`` means (1-based), per container:

- ``jsonl``: the physical line of the record (blank lines are counted, not yielded).
- ``json`` (a JSON list): the line on which the record's opening ``{`` stands.
- ``csv``: the physical line on which the row starts; the header is line 1, so the first data row is line 2
  (a quoted field spanning lines advances the count for the next row). Blank lines are not records.
- ``parquet``: the row's 1-based index.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ift_select.core.errors import DataError

Record = dict[str, Any]


@dataclass(frozen=True)
class Row:
    line: int
    record: Record | None
    error: str | None = None


_WS = re.compile(r"[ \t\n\r]*")
_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
               ".parquet": "parquet", ".pq": "parquet"}


def read_text(path: Path) -> str:
    """The file as text: UTF-8, a BOM accepted; invalid bytes, a missing or an empty file raise DataError."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                        "re-save the file as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def _object_or_error(line: int, value: Any) -> Row:
    if isinstance(value, dict):
        return Row(line, value)
    return Row(line, None, f"record is a JSON {type(value).__name__}, expected an object")


def _jsonl_rows(path: Path, text: str) -> Iterator[Row]:
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield Row(number, None, f"malformed JSON ({exc.msg}, column {exc.colno})")
            continue
        yield _object_or_error(number, value)


def _json_list_rows(path: Path, text: str) -> Iterator[Row]:
    """A JSON list of objects, decoded one element at a time so each record knows its starting line."""
    decoder = json.JSONDecoder()

    def skip_ws(at: int) -> int:
        return _WS.match(text, at).end()  # type: ignore[union-attr]

    def fail(message: str, at: int) -> DataError:
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        return DataError(f"{path}:{line}: malformed JSON list ({message}, column {column})")

    pos = skip_ws(0) + 1  # past the '[' that made this a JSON list
    line, line_pos, first = 1, 0, True
    while True:
        pos = skip_ws(pos)
        if first and text.startswith("]", pos):
            break
        first = False
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise fail(exc.msg, exc.pos) from None
        line += text.count("\n", line_pos, pos)
        line_pos = pos
        yield _object_or_error(line, value)
        pos = skip_ws(end)
        if text.startswith(",", pos):
            pos += 1
        elif text.startswith("]", pos):
            break
        else:
            raise fail("expected ',' or ']' after a record", pos)
    rest = skip_ws(pos + 1)
    if rest != len(text):
        raise fail("extra data after the closing ']'", rest)


def _csv_rows(path: Path, text: str) -> Iterator[Row]:
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # rows of a megabyte and more
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(rows)
    except csv.Error as exc:
        raise DataError(f"{path}:1: malformed CSV header ({exc})") from None
    if len(set(header)) != len(header):
        raise DataError(f"{path}:1: the CSV header repeats a column name ({', '.join(header)})")
    start = rows.line_num + 1
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{path}:{start}: malformed CSV ({exc})") from None
        if cells and len(cells) != len(header):
            yield Row(start, None, f"row has {len(cells)} fields, the header has {len(header)}")
        elif cells:
            yield Row(start, dict(zip(header, cells)))
        start = rows.line_num + 1


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: file is empty (no rows)")
    for index, record in enumerate(table.to_pylist(), start=1):
        yield Row(index, record)


def container_for(path: Path) -> str:
    """The container a file's extension names: json | jsonl | csv | parquet."""
    container = _EXTENSIONS.get(path.suffix.lower())
    if container is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise DataError(f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r} "
                        f"(known: {known}); set data.format")
    return container


def open_rows(path: Path, container: str) -> tuple[str, Iterator[Row]]:
    """Open ``path`` as ``container`` (json | jsonl | csv | parquet). Returns the container actually read
    (``json`` becomes ``json_list`` or, for JSON Lines under a .json name, ``jsonl``) and its rows."""
    if container == "parquet":
        if not path.exists():
            raise DataError(f"{path}: no such file")
        return "parquet", _parquet_rows(path)
    text = read_text(path)
    if container == "csv":
        return "csv", _csv_rows(path, text)
    if container == "json" and text.lstrip()[:1] == "[":
        return "json_list", _json_list_rows(path, text)
    return "jsonl", _jsonl_rows(path, text)
