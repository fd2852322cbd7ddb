"""File containers: turn a file into numbered raw records, whatever the field names.

Every reader yields ``Row(line, record, error)``: ``record`` is the raw mapping, or ``error`` says why the
row is unusable (a row-level problem the caller may skip with ``on_invalid: skip``). File-level problems
(missing, empty or corrupt gzip file, bytes that are not UTF-8, a malformed JSON list, a JSON array in a
.jsonl file) raise ``DataError`` at once. Every container may be gzip-compressed (see ``files``).

What ``line`` means (1-based), per container:

- ``jsonl``: the physical line of the record (blank lines are counted, not yielded); an object spread over
  several lines is one unusable row at its first line.
- ``json`` (a JSON list, or an object whose only key holds that list): the line on which the record's
  opening ``{`` stands.
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

from ift_select.data.files import read_bytes, read_text
from ift_select.data.jsonshape import column, explain, json_kind, object_document, wrapper_hint
from ift_select.core.errors import DataError

Record = dict[str, Any]


@dataclass(frozen=True)
class Row:
    line: int
    record: Record | None
    error: str | None = None


@dataclass(frozen=True)
class Opened:
    """A file opened as records: the container read, its rows, and the wrapper key the list was under."""

    container: str
    rows: Iterator[Row]
    wrapper_key: str | None = None


_WS = re.compile(r"[ \t\n\r]*")


def _object_or_error(line: int, value: Any) -> Row:
    if isinstance(value, dict):
        return Row(line, value)
    return Row(line, None, f"line {line} is {json_kind(value)}, expected an object")


def _decode_at(text: str, start: int) -> tuple[Any, int] | None:
    """(value, end) of the JSON value starting at ``start``, across lines; None when it does not decode."""
    try:
        return json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return None


def _array_document(text: str, start: int, line_end: int) -> bool:
    """Whether the '[' at ``start`` (a .jsonl file's first record line) opens an array of the whole data
    rather than one bad line: it does not decode, spans lines, or holds objects."""
    decoded = _decode_at(text, start)
    if decoded is None:
        return True
    value, end = decoded
    return end > line_end or (bool(value) and isinstance(value[0], dict))


def _jsonl_rows(path: Path, text: str, rename_hint: str) -> Iterator[Row]:
    offset, first, resume = 0, True, 0
    for number, raw in enumerate(text.split("\n"), start=1):
        start, offset = offset, offset + len(raw) + 1
        if start < resume or not raw.strip():
            continue
        begin = start + len(raw) - len(raw.lstrip())
        if first and text.startswith("[", begin) and _array_document(text, begin, offset - 1):
            raise DataError(f"{path}:{number}: line {number} holds a JSON array; a .jsonl file needs one "
                            f"object per line; rename to .json{rename_hint}")
        first = False
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            decoded = _decode_at(text, begin) if text.startswith("{", begin) else None
            if decoded is None or decoded[1] < offset:
                yield Row(number, None, explain(raw, exc, "JSON")[1])
                continue
            value, resume = decoded
            last = number + text.count("\n", start, resume)
            hint = wrapper_hint(value) if isinstance(value, dict) else None
            yield Row(number, None, f"lines {number}-{last} hold one JSON object; a .jsonl file needs one "
                                    f"object per line (jq -c rewrites it so)" + (f"; {hint}" if hint else ""))
            continue
        yield _object_or_error(number, value)


def _json_list_rows(path: Path, text: str, pos: int, closing: str = "") -> Iterator[Row]:
    """The JSON list whose '[' stands at ``pos`` (followed by ``closing`` when it is a wrapper's value),
    decoded one element at a time so each record knows its starting line."""
    decoder = json.JSONDecoder()

    def skip_ws(at: int) -> int:
        return _WS.match(text, at).end()  # type: ignore[union-attr]

    def fail(at: int, message: str) -> DataError:
        line_of_at = text.count("\n", 0, at) + 1
        return DataError(f"{path}:{line_of_at}: {message}")

    pos += 1
    line, line_pos, first = 1, 0, True
    while True:
        pos = skip_ws(pos)
        if first and text.startswith("]", pos):
            break
        first = False
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise fail(*explain(text, exc, "JSON list")) from None
        line += text.count("\n", line_pos, pos)
        line_pos = pos
        yield _object_or_error(line, value)
        pos = skip_ws(end)
        if text.startswith(",", pos):
            pos += 1
        elif text.startswith("]", pos):
            break
        else:
            raise fail(pos, f"malformed JSON list (expected ',' or ']' after a record, column {column(text, pos)})")
    rest = skip_ws(pos + 1)
    if closing and text.startswith(closing, rest):
        rest = skip_ws(rest + len(closing))
    if rest != len(text):
        raise fail(rest, f"malformed JSON list (extra data after the closing ']', column {column(text, rest)})")


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
        nul = next((name for name, cell in zip(header, cells) if "\x00" in cell), None)
        if cells and len(cells) != len(header):
            trailing = " (a trailing comma?)" if len(cells) == len(header) + 1 and cells[-1] == "" else ""
            yield Row(start, None, f"row has {len(cells)} fields, the header has {len(header)}{trailing}")
        elif nul is not None:
            yield Row(start, None, f"NUL byte in field {nul!r} (a raw \\x00; remove it)")
        elif cells:
            yield Row(start, dict(zip(header, cells)))
        start = rows.line_num + 1


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    data = read_bytes(path)
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: file is empty (no rows)")
    for index, record in enumerate(table.to_pylist(), start=1):
        yield Row(index, record)


def open_rows(path: Path, container: str, rename_hint: str = "") -> Opened:
    """Open ``path`` as ``container`` (json | jsonl | csv | parquet). The container actually read: ``json``
    becomes ``json_list`` (also for a one-key wrapper object) or, for JSON Lines under a .json name,
    ``jsonl``. ``rename_hint`` ends the message for a JSON array in a .jsonl file (a setting to change)."""
    if container == "parquet":
        return Opened("parquet", _parquet_rows(path))
    text = read_text(path)
    if container == "csv":
        return Opened("csv", _csv_rows(path, text))
    if container == "json":
        begin = len(text) - len(text.lstrip())
        if text.startswith("[", begin):
            return Opened("json_list", _json_list_rows(path, text, begin))
        wrapper = object_document(path, text) if text.startswith("{", begin) else None
        if wrapper is not None:
            key, at = wrapper
            return Opened("json_list", _json_list_rows(path, text, at, closing="}"), wrapper_key=key)
    return Opened("jsonl", _jsonl_rows(path, text, rename_hint))
