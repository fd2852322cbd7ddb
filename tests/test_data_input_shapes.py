"""Input handling (issue 14): compressed files, wrong JSON shapes, null and blank fields, NUL bytes and trailing
commas. Each test checks the words a user reads; pools and test sets go through the same checks.

docs/reliability_inputs.md lists these cases and names the test that keeps each row true.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from ift_select.data import load_pool, load_test_set
from ift_select.data.common import locate
from ift_select.core.errors import DataError

GOOD = [{"instruction": f"Add {i} and 3.", "input": "", "output": str(i + 3)} for i in range(4)]


def lines(rows: list) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def load(kind: str, path: Path, **kwargs):
    return load_pool(path, **kwargs) if kind == "pool" else load_test_set(path, "t", **kwargs)


def error(kind: str, path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load(kind, path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


KINDS = pytest.mark.parametrize("kind", ["pool", "test"])


# --- gzip --------------------------------------------------------------------------------------------------

@KINDS
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_gzip_files_read_as_the_inner_extension(tmp_path, kind, suffix):
    body = {".jsonl": lines(GOOD), ".json": json.dumps(GOOD, indent=4),
            ".csv": "instruction,input,output\n" + "".join(f"{r['instruction']},,{r['output']}\n" for r in GOOD)}
    plain = write(tmp_path / f"pool{suffix}", body[suffix])
    packed = write(tmp_path / f"pool{suffix}.gz", gzip.compress(plain.read_bytes()))
    frame, report = load(kind, packed)
    expected, expected_report = load(kind, plain)
    assert report.kept == 4 and report.format == expected_report.format
    assert frame.drop(columns=["source"], errors="ignore").equals(expected.drop(columns=["source"], errors="ignore"))


@KINDS
def test_corrupt_gzip_is_one_line_naming_the_file(tmp_path, kind):
    path = write(tmp_path / "pool.jsonl.gz", gzip.compress(lines(GOOD).encode())[:-12])
    assert error(kind, path).startswith(f"{path}: corrupt gzip file (Compressed file ended before the end-of-stream")
    path = write(tmp_path / "named.jsonl.gz", lines(GOOD))
    assert error(kind, path) == f"{path}: named .gz but not gzip-compressed; rename it without the .gz"


# --- JSON shapes -------------------------------------------------------------------------------------------

@KINDS
def test_a_one_key_wrapper_object_is_read_as_its_list_and_reported(tmp_path, kind):
    path = write(tmp_path / "pool.json", json.dumps({"data": GOOD[:2]}, indent=4))
    frame, report = load(kind, path)
    assert (report.wrapper_key, report.kept) == ("data", 2)
    assert frame["source_line"].tolist() == [3, 8]  # each record's opening "{" inside the wrapper


WRONG_SHAPES = {  # case: (file name, content, the message after "<path>")
    "wrapper_with_other_keys": (
        "pool.json", json.dumps({"version": 2, "data": GOOD[:2]}, indent=4),
        ": the file is a JSON object with keys version, data, expected a list of records; key 'data' holds a list "
        "of 2 records (a wrapper object); data.field_map cannot fix this, it renames fields inside each record; "
        "keep only that key or extract the list: jq '.data' pool.json > records.json"),
    "wrapper_on_one_jsonl_line": (
        "pool.jsonl", lines([{"data": GOOD}]),
        ":1: key 'data' holds a list of 4 records (a wrapper object); data.field_map cannot fix this, it renames "
        "fields inside each record; save the file as .json (an object whose only key holds the list is read as "
        "that list) or extract the list: jq -c '.data[]'"),
    "pretty_printed_object": (
        "pool.json", json.dumps(GOOD[0], indent=4),
        ": the file is one pretty-printed JSON object (5 lines, keys instruction, input, output), expected a JSON "
        "list of records ([{...}, {...}]) or JSON Lines (one object per line); wrap a single record in [ ]"),
}


@KINDS
@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_a_wrong_json_shape_names_the_shape_found_and_expected(tmp_path, kind, case):
    name, content, message = WRONG_SHAPES[case]
    path = write(tmp_path / name, content)
    assert error(kind, path) == f"{path}{message}"


@pytest.mark.parametrize("indent", [None, 2])
def test_a_json_array_in_a_jsonl_file(tmp_path, indent):
    path = write(tmp_path / "pool.jsonl", json.dumps(GOOD, indent=indent))
    assert error("pool", path) == (f"{path}:1: line 1 holds a JSON array; a .jsonl file needs one object per line; "
                                   "rename to .json or set data.format: alpaca_json")
    assert error("test", path) == (f"{path}:1: line 1 holds a JSON array; a .jsonl file needs one object per line; "
                                   "rename to .json")


@KINDS
def test_an_object_spread_over_lines_of_a_jsonl_file_is_one_counted_problem(tmp_path, kind):
    text = lines([GOOD[0]]) + json.dumps(GOOD[1], indent=4) + "\n" + lines(GOOD[2:])
    path = write(tmp_path / "pool.jsonl", text)
    assert error(kind, path) == (f"{path}:2: lines 2-6 hold one JSON object; a .jsonl file needs one object per "
                                 "line (jq -c rewrites it so)")
    frame, report = load(kind, path, on_invalid="skip")
    assert (report.records, report.kept, report.skipped) == (4, 3, 1)
    assert frame["source_line"].tolist() == [1, 7, 8]


# --- fields: blank, null, missing --------------------------------------------------------------------------

@KINDS
def test_empty_and_whitespace_instructions_are_invalid_and_every_skip_counts(tmp_path, kind):
    empty, blank = dict(GOOD[0], instruction=""), dict(GOOD[0], instruction=" \t ")
    path = write(tmp_path / "pool.jsonl", lines([GOOD[0], empty, blank, empty, GOOD[1]]))
    assert error(kind, path) == f"{path}:2: field 'instruction' is empty"
    _, report = load(kind, path, on_invalid="skip")
    assert (report.records, report.kept, report.duplicates, report.skipped) == (5, 2, 0, 3)
    assert [locate(**r) for r in report.skipped_reasons] == [
        "line 2: field 'instruction' is empty", "line 3: field 'instruction' is whitespace only",
        "line 4: field 'instruction' is empty"]


def test_empty_instruction_in_a_csv_pool(tmp_path):
    path = write(tmp_path / "pool.csv", "instruction,input,output\nAdd 1 and 3.,,4\n,,5\n")
    assert error("pool", path) == f"{path}:3: field 'instruction' is empty"


@KINDS
@pytest.mark.parametrize("value, said", [("null", "is null"), ("NaN", "is null (NaN)")])
def test_null_or_nan_is_said_to_be_null_not_missing(tmp_path, kind, value, said):
    field = "output" if kind == "pool" else "instruction"
    record = json.dumps({k: v for k, v in GOOD[1].items() if k != field})[:-1] + f', "{field}": {value}}}'
    path = write(tmp_path / "pool.jsonl", lines([GOOD[0], record]))
    assert error(kind, path) == f"{path}:2: field '{field}' {said}"
    path = write(tmp_path / "absent.jsonl", lines([GOOD[0], {k: v for k, v in GOOD[1].items() if k != field}]))
    assert error(kind, path) == f"{path}:2: field '{field}' is missing"


@KINDS
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_null_record_says_line_n_is_null(tmp_path, kind, suffix):
    body = lines([GOOD[0], "", "null"]) if suffix == ".jsonl" else "[\n" + json.dumps(GOOD[0]) + ",\nnull\n]"
    path = write(tmp_path / f"pool{suffix}", body)
    assert error(kind, path) == f"{path}:3: line 3 is null, expected an object"
    _, report = load(kind, path, on_invalid="skip")
    assert [locate(**r) for r in report.skipped_reasons] == ["line 3 is null, expected an object"]


# --- NUL bytes, trailing commas, UTF-16 --------------------------------------------------------------------

NUL = '{"instruction": "Add\x00 5 and 3.", "output": "8"}'


@KINDS
def test_a_raw_nul_byte_names_its_line(tmp_path, kind):
    path = write(tmp_path / "pool.jsonl", lines([*GOOD[:2], "", NUL]))
    message = "NUL byte at column 21 (a raw \\x00, which JSON cannot hold; remove it)"
    assert error(kind, path) == f"{path}:4: {message}"
    _, report = load(kind, path, on_invalid="skip")
    assert locate(**report.skipped_reasons[0]) == f"line 4: {message}"
    path = write(tmp_path / "pool.json", "[\n" + json.dumps(GOOD[0]) + ",\n" + NUL + "\n]")
    assert error(kind, path) == f"{path}:3: {message}"


def test_a_raw_nul_byte_in_a_csv_row(tmp_path):
    path = write(tmp_path / "pool.csv", "instruction,output\nAdd 1 and 3.,4\nAdd\x00 2 and 3.,5\n")
    assert error("pool", path) == f"{path}:3: NUL byte in field 'instruction' (a raw \\x00; remove it)"


@KINDS
def test_a_trailing_comma_is_named_at_its_own_line(tmp_path, kind):
    body = "[\n    " + ",\n    ".join(json.dumps(r) for r in GOOD[:2]) + ",\n]\n"  # comma on line 3, "]" on 4
    path = write(tmp_path / "pool.json", body)
    assert error(kind, path) == (f"{path}:3: trailing comma at column 64 (JSON allows no comma before ']'; "
                                 "remove it)")
    path = write(tmp_path / "inner.json", '[\n  {"instruction": "a", "output": "b",\n  }\n]\n')
    assert error(kind, path) == (f"{path}:2: trailing comma at column 37 (JSON allows no comma before '}}'; "
                                 "remove it)")
    path = write(tmp_path / "pool.jsonl", lines([json.dumps(GOOD[0]) + ",", GOOD[1]]))
    assert error(kind, path) == (f"{path}:1: trailing comma at column 60 (JSON Lines has no commas between "
                                 "records; remove it)")


def test_a_trailing_comma_in_a_csv_row(tmp_path):
    path = write(tmp_path / "pool.csv", "instruction,input,output\nAdd 1 and 3.,,4,\n")
    assert error("pool", path) == f"{path}:2: row has 4 fields, the header has 3 (a trailing comma?)"


@KINDS
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_utf16_is_named(tmp_path, kind, encoding):
    path = write(tmp_path / "pool.jsonl", lines(GOOD).encode(encoding))
    assert re.fullmatch(rf"{re.escape(str(path))}: looks like UTF-16, not UTF-8 \(.*\); re-save the file as UTF-8",
                        error(kind, path))
