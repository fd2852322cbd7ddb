"""Malformed inputs: each gives a DataError naming file and line, or a counted skip with on_invalid='skip'."""

from __future__ import annotations

import csv
import json
import random
import re
import string
from pathlib import Path

import pandas as pd
import pytest

from ift_select.data import load_pool, load_test_set
from ift_select.data.common import MAX_REASONS
from ift_select.core.errors import DataError

GOOD = {"instruction": "Add 2 and 3.", "input": "", "output": "5"}


def jsonl(path: Path, lines: list[str | dict]) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def good(i: int) -> dict:
    return {"instruction": f"Add {i} and 3.", "input": "", "output": str(i + 3)}


def error_at(path: Path, line: int, pattern: str, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load_pool(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert re.search(pattern, message), message
    assert "\n" not in message
    return info.value


# --- row-level problems: error with the line, or a counted skip ------------------------------------------

ROW_CASES = {
    "malformed_json_line": ('{"instruction": "x", "output": ', r"malformed JSON"),
    "output_missing": ({"instruction": "x", "input": ""}, r"field 'output' is missing"),
    "instruction_null": ({"instruction": None, "output": "y"}, r"field 'instruction' is null$"),
    "instruction_absent": ({"output": "y"}, r"field 'instruction' is missing$"),
    "output_number": ({"instruction": "x", "output": 42}, r"field 'output' must be a string, got int 42"),
    "output_boolean": ({"instruction": "x", "output": True}, r"field 'output' must be a string, got boolean"),
    "input_list": ({"instruction": "x", "input": ["a"], "output": "y"}, r"field 'input' must be a string"),
    "not_an_object": ('["x", "y"]', r"line 4 is an array, expected an object$"),
}


@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_jsonl_row_problem_names_the_line_or_is_skipped(tmp_path, case):
    bad, pattern = ROW_CASES[case]
    path = jsonl(tmp_path / "pool.jsonl", [good(1), good(2), "", bad, good(4)])  # bad row on line 4
    error_at(path, 4, pattern)
    frame, report = load_pool(path, on_invalid="skip")
    assert (report.records, report.kept, report.skipped) == (4, 3, 1)
    assert report.skipped_reasons[0]["line"] == 4 and re.search(pattern, report.skipped_reasons[0]["reason"])
    assert frame["source_line"].tolist() == [1, 2, 5]


def test_input_missing_or_null_is_empty_string_and_empty_output_is_kept(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [{"instruction": "a", "output": "b"}, {"instruction": "c", "input": None,
                                                                              "output": ""}])
    frame, report = load_pool(path)
    assert frame["input"].tolist() == ["", ""] and frame["output"].tolist() == ["b", ""]
    assert report.skipped == 0


def test_json_list_wrong_type_names_the_record_line(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps([GOOD, {"instruction": "x", "output": False}], indent=4))
    error_at(path, 7, r"field 'output' must be a string, got boolean False")


def test_dolly_names_the_files_own_field(tmp_path):
    path = jsonl(tmp_path / "dolly.jsonl", [{"instruction": "a", "context": "", "response": "b"},
                                            {"instruction": "a", "context": "", "response": 3}])
    error_at(path, 2, r"field 'response' \(output\) must be a string, got int 3")


def test_skipped_reasons_are_capped_but_all_counted(tmp_path):
    rows = [good(0)] + [{"instruction": "x"} for _ in range(MAX_REASONS + 50)]
    _, report = load_pool(jsonl(tmp_path / "p.jsonl", rows), on_invalid="skip")
    assert report.skipped == MAX_REASONS + 50 and len(report.skipped_reasons) == MAX_REASONS
    assert report.to_dict()["skipped"] == MAX_REASONS + 50


def test_every_row_invalid_with_skip_is_still_an_error(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [{"instruction": "x", "output": 1}, {"instruction": "y", "output": 2}])
    with pytest.raises(DataError, match=r"no valid records \(2 skipped; first: line 1: field 'output' must be"):
        load_pool(path, on_invalid="skip")


# --- file-level problems ---------------------------------------------------------------------------------

def test_malformed_json_list_names_line_and_column(tmp_path):
    path = tmp_path / "pool.json"
    text = json.dumps([GOOD, GOOD], indent=4)
    path.write_text(text.replace('"5"\n    },', '"5"\n    }', 1))  # missing comma: next "{" on line 7
    error = error_at(path, 7, r"malformed JSON list \(expected ',' or ']' after a record, column 5\)")
    assert "pool.json:7:" in str(error)
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]')
    error_at(path, 3, r"malformed JSON list \(Expecting ',' delimiter, column 23\)")


EMPTY = {".jsonl": [b"", b"  \n\n", b"\xef\xbb\xbf", b"\n\n\n"],
         ".json": [b"", b"[]", b"[\n]\n", b"\xef\xbb\xbf[ ]"],
         ".csv": [b"", b"instruction,output\n", b"instruction,output\r\n\r\n\r\n"]}


@pytest.mark.parametrize("suffix, content", [(s, c) for s, contents in EMPTY.items() for c in contents])
def test_empty_files(tmp_path, suffix, content):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: file is empty"):
        load_pool(path)
    if suffix != ".csv":
        with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: file is empty"):
            load_test_set(path, "t")


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file"):
        load_pool(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match=r"nope\.parquet: no such file"):
        load_pool(tmp_path / "nope.parquet")
    (tmp_path / "pool.txt").write_text(json.dumps(GOOD))
    with pytest.raises(DataError, match=r"pool\.txt: cannot tell the format .* set data\.format"):
        load_pool(tmp_path / "pool.txt")
    assert load_pool(tmp_path / "pool.txt", format="jsonl")[1].kept == 1


def test_bad_settings_name_the_setting(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [GOOD])
    with pytest.raises(DataError, match=r"data\.format: 'yaml'"):
        load_pool(path, format="yaml")
    with pytest.raises(DataError, match=r"data\.field_map: 'answer' is not a pool field"):
        load_pool(path, field_map={"answer": "output"})
    with pytest.raises(DataError, match=r"data\.field_map\.output = 'answer', but the file has no such field"):
        load_pool(path, field_map={"output": "answer"})
    with pytest.raises(DataError, match=r"data\.on_invalid"):
        load_pool(path, on_invalid="ignore")  # type: ignore[arg-type]


def test_unrecognised_fields_suggest_a_field_map(tmp_path):
    path = jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"cannot find the instruction/output fields \(found: question, answer\); "
                                        r"set data\.field_map"):
        load_pool(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_utf8_bom_is_accepted(tmp_path, suffix):
    path = tmp_path / f"bom{suffix}"
    body = {".jsonl": json.dumps(GOOD) + "\n", ".json": json.dumps([GOOD]),
            ".csv": "instruction,input,output\nAdd 2 and 3.,,5\n"}[suffix]
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    frame, report = load_pool(path)
    assert report.kept == 1 and frame["instruction"].iloc[0] == "Add 2 and 3."


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_latin1_bytes_name_the_line(tmp_path, suffix):
    path = tmp_path / f"latin1{suffix}"
    if suffix == ".jsonl":
        lines = [json.dumps(good(i)) for i in range(3)] + ['{"instruction": "caf\u00e9", "output": "x"}']
    else:
        lines = ["instruction,output", "a,b", "c,d", "caf\u00e9,x"]
    path.write_bytes("\n".join(lines).encode("latin-1"))
    error_at(path, 4, r"not valid UTF-8 \(byte 0xe9\)")


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_a_one_megabyte_row_loads(tmp_path, suffix):
    text = "".join(random.Random(0).choices(string.ascii_letters + " \n", k=1_100_000))  # incompressible
    big = {"instruction": "Copy the text.", "input": "", "output": text}
    rows = [GOOD, big]
    path = tmp_path / f"big{suffix}"
    if suffix == ".jsonl":
        jsonl(path, rows)
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    elif suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path)
    assert path.stat().st_size > 1_000_000
    frame, _ = load_pool(path)
    assert len(frame["output"].iloc[1]) == len(big["output"])


def write_csv(path: Path, rows: list[list[str]], lineterminator: str = "\n") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator=lineterminator).writerows(rows)
    return path


@pytest.mark.parametrize("lineterminator", ["\n", "\r\n"])
def test_csv_extra_or_missing_fields_name_the_line(tmp_path, lineterminator):
    rows = [["instruction", "input", "output"], ["a", "", "line one\nline two"], ["b", "", "c"],
            ["shifted", "", "x", "extra"], ["d", "e", "f"], ["short", "x"]]
    path = write_csv(tmp_path / "pool.csv", rows, lineterminator)
    # header = 1, first row spans lines 2-3, then lines 4, 5 (extra field), 6, 7 (missing field)
    error_at(path, 5, r"row has 4 fields, the header has 3")
    frame, report = load_pool(path, on_invalid="skip")
    assert frame["source_line"].tolist() == [2, 4, 6]
    assert [r["line"] for r in report.skipped_reasons] == [5, 7]
    assert frame["output"].iloc[0] == "line one\nline two"


def test_csv_unterminated_quote_names_the_line(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text('instruction,output\na,b\n"c,d\n')
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: malformed CSV"):
        load_pool(path)


def test_parquet_wrong_type_names_the_row(tmp_path):
    path = tmp_path / "pool.parquet"
    pd.DataFrame({"instruction": ["a", "b", "c"], "output": ["x", None, "z"]}).to_parquet(path)
    error_at(path, 2, r"field 'output' is null$")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"junk\.parquet: not a readable Parquet file"):
        load_pool(tmp_path / "junk.parquet")


# --- test sets -------------------------------------------------------------------------------------------

def test_test_set_errors_name_file_and_line(tmp_path):
    path = jsonl(tmp_path / "vicuna.jsonl", [{"question_id": 1, "text": "Hi?", "category": "generic"},
                                             {"question_id": 2, "category": "generic"}])
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:2: field 'text' \(instruction\) is missing$"):
        load_test_set(path, "vicuna")
    path = jsonl(tmp_path / "mt.jsonl", [{"question_id": 1, "turns": [7], "category": "math"}])
    with pytest.raises(DataError, match=r":1: field 'turns\.0' \(instruction\) must be a string, got int 7"):
        load_test_set(path, "mt")
    path = jsonl(tmp_path / "odd.jsonl", [{"prompt_text": "Hi?"}])
    with pytest.raises(DataError, match=r"not a known test-set format \(found fields: prompt_text\)"):
        load_test_set(path, "odd")
    with pytest.raises(DataError, match=r"data\.test_sets\.x\.format: 'alpaca'"):
        load_test_set(path, "x", format="alpaca")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a"}\n{"instruction": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        load_test_set(bad, "bad")
