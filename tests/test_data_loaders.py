"""Pool and test-set loaders against the real public files (../shared/data) and small format fixtures."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ift_select.cli import app
from ift_select.data import inspect_file, load_pool, load_test_set, row_id
from ift_select.data.car_text import join_src, split_src, strip_response
from ift_select.core.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "data"
POOL_COLUMNS = ["id", "instruction", "input", "output", "source", "source_line"]
TEST_COLUMNS = ["id", "test_set", "instruction", "input", "reference", "category", "source_line"]
ALPACA_FIRST = ("Give three tips for staying healthy.", "",
                "1.Eat a balanced diet and make sure to include plenty of fruits and vegetables. \n"
                "2. Exercise regularly to keep your body active and strong. \n"
                "3. Get enough sleep and maintain a consistent sleep schedule.")


# --- ids -------------------------------------------------------------------------------------------------

def test_row_id_definition_is_pinned():
    normalised = "\n\n".join(" ".join(part.split()) for part in ALPACA_FIRST)
    assert row_id(*ALPACA_FIRST) == hashlib.sha256(normalised.encode()).hexdigest()[:16] == "d39c15c4602f6a1b"


def test_row_id_ignores_whitespace_differences_only():
    assert row_id("  Add 2\n and  3. ", "", "5") == row_id("Add 2 and 3.", "", "5")
    assert row_id("Add 2 and 3.", "", "5") != row_id("Add 2 and 3.", "5", "")


# --- real pools ------------------------------------------------------------------------------------------

def test_alpaca_52k(shared_data):
    path = shared_data("alpaca52k/alpaca_data.json")
    start = time.perf_counter()
    frame, report = load_pool(path)
    seconds = time.perf_counter() - start
    assert seconds < 10, f"loading Alpaca 52k took {seconds:.1f} s"
    assert (report.format, report.records, report.kept, report.duplicates, report.skipped) == (
        "alpaca_json", 52002, 52002, 0, 0)
    assert list(frame.columns) == POOL_COLUMNS
    assert frame["id"].is_unique and len(frame) == 52002
    first = frame.iloc[0]
    assert (first["instruction"], first["input"], first["output"]) == ALPACA_FIRST
    assert first["id"] == "d39c15c4602f6a1b" and first["source"] == str(path)
    # JSON lists: source_line is the line of the record's opening "{" (indent=4, 5 lines per record)
    assert frame["source_line"].head(3).tolist() == [2, 7, 12]
    assert frame["source_line"].dtype == "int64"


def test_dolly_3k_keeps_category_and_counts_its_two_exact_duplicates(shared_data):
    frame, report = load_pool(shared_data("alpagasus_subsets/dolly_3k.json"))
    assert (report.records, report.kept, report.duplicates) == (2996, 2994, 2)
    assert list(frame.columns) == [*POOL_COLUMNS, "category"]
    assert "open_qa" in set(frame["category"])
    assert (frame["input"] != "").sum() > 0  # Dolly's context, renamed to input by AlpaGasus


def test_field_map_on_coachlm_expert_revisions(shared_data):
    field_map = {"instruction": "Raw Instruction", "input": "Raw Input", "output": "Raw Response"}
    path = shared_data("coachlm_expert_revision/expert_revision_dataset.json")
    with pytest.raises(DataError, match=r"expert_revision_dataset\.json:11252: field 'Raw Instruction' "
                                        r"\(instruction\) is empty$"):
        load_pool(path, field_map=field_map)
    frame, report = load_pool(path, field_map=field_map, on_invalid="skip")
    assert (report.records, report.kept, report.skipped) == (2301, 2299, 2) and report.field_map == field_map
    assert [r["reason"] for r in report.skipped_reasons] == ["field 'Raw Instruction' (instruction) is empty"] * 2
    assert {"Revised Instruction", "Revised Response", "Distance"} <= set(frame.columns)
    assert "Raw Instruction" not in frame.columns


def test_car_style_csv_with_src_only(shared_data):
    frame, report = load_pool(shared_data("car_expert_revised_scores/APE_score_valid.csv"))
    assert (report.format, report.records, report.skipped) == ("csv", 508, 0)
    first = frame.iloc[0]
    assert first["instruction"] == "List four countries in Africa"
    assert first["output"] == "Egypt, South Africa, Nigeria, Morocco."
    assert first["source_line"] == 2 and first["score"] == "0"
    assert (frame["input"] != "").sum() > 100  # "Instruction: ... Input: ... Response: ..."


def test_pandalm_pairs_with_boolean_responses_error_or_skip(shared_data):
    path = shared_data("pandalm170/testset-v1.json")
    with pytest.raises(DataError, match=r"testset-v1\.json:1886: field 'response1' \(output\) must be a string"):
        load_pool(path, field_map={"output": "response1"})
    _, report = load_pool(path, field_map={"output": "response1"}, on_invalid="skip")
    assert report.skipped == 5 and report.records == 999  # 4 booleans, 1 whitespace-only instruction
    assert report.skipped_reasons[0]["line"] == 1886
    assert sum(r["reason"] == "field 'instruction' is whitespace only" for r in report.skipped_reasons) == 1


# --- the same rows in every pool format ------------------------------------------------------------------

@pytest.fixture
def alpaca_rows(shared_data) -> list[dict]:
    return json.loads(shared_data("alpaca52k/alpaca_data.json").read_text())[:200]


def _write(path: Path, rows: list[dict], container: str) -> Path:
    if container == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif container == "json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    elif container == "csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("name, container, fmt", [
    ("pool.jsonl", "jsonl", "jsonl"), ("pool.json", "json", "alpaca_json"), ("pool.csv", "csv", "csv"),
    ("pool.parquet", "parquet", "parquet"),
])
def test_every_format_gives_the_same_ids(tmp_path, alpaca_rows, name, container, fmt):
    reference, _ = load_pool(_write(tmp_path / "ref.jsonl", alpaca_rows, "jsonl"))
    frame, report = load_pool(_write(tmp_path / name, alpaca_rows, container))
    assert report.format == fmt and report.records == 200
    assert frame["id"].tolist() == reference["id"].tolist()
    assert frame["id"].iloc[0] == "d39c15c4602f6a1b"


def test_source_lines_per_container(tmp_path, alpaca_rows):
    rows = alpaca_rows[:3]
    assert load_pool(_write(tmp_path / "a.jsonl", rows, "jsonl"))[0]["source_line"].tolist() == [1, 2, 3]
    assert load_pool(_write(tmp_path / "a.json", rows, "json"))[0]["source_line"].tolist() == [2, 7, 12]
    assert load_pool(_write(tmp_path / "a.parquet", rows, "parquet"))[0]["source_line"].tolist() == [1, 2, 3]
    # CSV: header is line 1; the first row's output spans 3 physical lines, so the second row starts on 5
    assert load_pool(_write(tmp_path / "a.csv", rows, "csv"))[0]["source_line"].tolist() == [2, 5, 6]


def test_dolly_fields_detected_and_forced(tmp_path, alpaca_rows):
    dolly = [{"instruction": r["instruction"], "context": r["input"], "response": r["output"], "category": "qa"}
             for r in alpaca_rows]
    path = _write(tmp_path / "dolly.jsonl", dolly, "jsonl")
    reference, _ = load_pool(_write(tmp_path / "ref.jsonl", alpaca_rows, "jsonl"))
    for fmt in ("auto", "dolly"):
        frame, report = load_pool(path, format=fmt)
        assert report.format == "dolly"
        assert report.field_map == {"instruction": "instruction", "input": "context", "output": "response"}
        assert frame["id"].tolist() == reference["id"].tolist()
        assert list(frame.columns) == [*POOL_COLUMNS, "category"]


def test_forced_container_ignores_the_extension(tmp_path, alpaca_rows):
    jsonl_named_json = _write(tmp_path / "rows.json", alpaca_rows[:5], "jsonl")
    assert load_pool(jsonl_named_json)[1].format == "jsonl"  # sniffed
    csv_named_txt = _write(tmp_path / "rows.txt", alpaca_rows[:5], "csv")
    assert load_pool(csv_named_txt, format="csv")[1].records == 5


def test_field_map_partial_and_extra_columns_named_like_the_contract(tmp_path):
    rows = [{"id": 7, "question": "What is 2 + 2?", "answer": "4", "source": "web"}]
    frame, report = load_pool(_write(tmp_path / "qa.jsonl", rows, "jsonl"),
                              field_map={"instruction": "question", "output": "answer"})
    assert report.field_map == {"instruction": "question", "input": "input", "output": "answer"}
    assert frame.iloc[0][["instruction", "input", "output"]].tolist() == ["What is 2 + 2?", "", "4"]
    assert frame.iloc[0]["orig_id"] == 7 and frame.iloc[0]["orig_source"] == "web"


def test_duplicates_after_whitespace_normalisation_and_max_rows(tmp_path):
    rows = [{"instruction": "Add 2 and 3.", "output": "5"}, {"instruction": "Add 2  and 3. ", "output": "5\n"},
            {"instruction": "Add 1 and 1.", "output": "2"}, {"instruction": "Add 2 and 3.", "output": "5"}]
    frame, report = load_pool(_write(tmp_path / "d.jsonl", rows, "jsonl"))
    assert (report.records, report.kept, report.duplicates) == (4, 2, 2)
    assert frame["source_line"].tolist() == [1, 3]  # the first occurrence is kept
    frame, report = load_pool(tmp_path / "d.jsonl", max_rows=1)
    assert len(frame) == 1 and report.kept == 1


# --- real test sets --------------------------------------------------------------------------------------

def test_vicuna_80(shared_data):
    frame, report = load_test_set(shared_data("vicuna80/question.jsonl"), "vicuna80")
    assert (report.format, report.records, len(frame)) == ("vicuna", 80, 80)
    assert list(frame.columns) == TEST_COLUMNS
    counts = Counter(frame["category"])
    assert counts["coding"] == 7 and counts["math"] == 3 and counts["writing"] == 10 and len(counts) == 9
    assert frame["id"].iloc[0] == "vicuna80/1" and frame["reference"].isna().all()


def test_koala_180(shared_data):
    frame, report = load_test_set(shared_data("koala180/koala_test_set.jsonl"), "koala")
    assert (report.format, len(frame)) == ("koala", 180)
    assert frame["id"].iloc[0] == "koala/koala_0" and frame["category"].isna().all()


def test_selfinstruct_252_has_references(shared_data):
    frame, report = load_test_set(shared_data("selfinstruct252/user_oriented_instructions.jsonl"), "si")
    assert (report.format, len(frame)) == ("selfinstruct", 252)
    assert frame["reference"].notna().all() and (frame["reference"].str.len() > 0).all()
    assert frame["category"].iloc[0] == "Grammarly" and frame["input"].iloc[0].startswith("If you have")


def test_pandalm_170_and_its_pairs_file(shared_data):
    path = shared_data("pandalm170/testset-inference-v1.json")
    # item 162 asks nothing (instruction " ", input "Truthfulness"): an error, or a counted skip
    with pytest.raises(DataError, match=r"testset-inference-v1\.json:807: field 'instruction' is whitespace only$"):
        load_test_set(path, "pandalm")
    frame, report = load_test_set(path, "pandalm", on_invalid="skip")
    assert (report.format, report.records, len(frame), report.skipped) == ("pandalm", 170, 169, 1)
    assert report.skipped_reasons == [{"line": 807, "reason": "field 'instruction' is whitespace only"}]
    assert frame["category"].notna().all() and frame["id"].is_unique
    assert frame["source_line"].iloc[0] == 2
    # the 999 human-annotated pairs repeat those 170 instructions: same ids, counted as duplicates
    pairs, pairs_report = load_test_set(shared_data("pandalm170/testset-v1.json"), "pandalm", on_invalid="skip")
    assert (pairs_report.records, pairs_report.kept, pairs_report.duplicates, pairs_report.skipped) == (
        999, 169, 829, 1)
    assert set(pairs["id"]) == set(frame["id"])


@pytest.mark.parametrize("file, fmt, n", [("wizardlm.jsonl", "wizardlm", 4), ("coachlm.json", "coachlm", 3),
                                          ("mtbench.jsonl", "mtbench", 3)])
def test_fixture_formats(file, fmt, n):
    frame, report = load_test_set(FIXTURES / file, "t")
    assert (report.format, len(frame)) == (fmt, n)
    forced, _ = load_test_set(FIXTURES / file, "t", format=fmt)
    assert forced.equals(frame)


def test_fixture_fields():
    wiz, _ = load_test_set(FIXTURES / "wizardlm.jsonl", "wizardlm")
    assert wiz["category"].tolist()[:2] == ["Math", "Code Generation"] and wiz["id"].iloc[0] == "wizardlm/1"
    coach, _ = load_test_set(FIXTURES / "coachlm.json", "coachlm")
    assert coach["reference"].iloc[2].startswith("A. Minerals") and coach["input"].iloc[1].startswith("I'm trying")
    assert coach["source_line"].tolist() == [2, 7, 12]
    mt, _ = load_test_set(FIXTURES / "mtbench.jsonl", "mtbench")
    assert mt["instruction"].iloc[0].startswith("Compose a short travel blog")  # first turn only
    assert mt["reference"].tolist() == [None, "Area is 3", "Can be simple solutions like using Counter"]
    assert mt["id"].tolist() == ["mtbench/81", "mtbench/111", "mtbench/121"]


def test_generic_test_set_with_reference(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([{"instruction": "Say hi.", "reference": "Hi!", "category": "chat"},
                                {"instruction": "Add 1 and 2.", "input": "", "category": 3}]))
    frame, report = load_test_set(path, "mine")
    assert report.format == "generic"
    assert frame["reference"].tolist() == ["Hi!", None] and frame["category"].tolist() == ["chat", "3"]
    assert frame["id"].iloc[0] == f"mine/{row_id('Say hi.', '')}"


# --- inspect ---------------------------------------------------------------------------------------------

def test_inspect_file_pool_and_test(shared_data):
    info = inspect_file(shared_data("alpagasus_subsets/dolly_3k.json"))
    assert info["records"] == 2996 and info["duplicates"] == 2 and "category" in info["columns"]
    info = inspect_file(shared_data("vicuna80/question.jsonl"), kind="test")
    assert info["format"] == "vicuna" and info["field_map"]["instruction"] == "text"


def test_cli_data_inspect_last_line_is_json(tmp_path):
    path = tmp_path / "p.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([["instruction", "input", "output"], ["Add 2 and 3.", "", "5"],
                                  ["Add 2 and 3.", "", "5"]])
    result = CliRunner().invoke(app, ["data", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert (last["records"], last["kept"], last["duplicates"], last["format"]) == (2, 1, 1, "csv")
    assert "format csv" in result.stdout


def test_cli_data_inspect_test_kind():
    result = CliRunner().invoke(app, ["data", "inspect", str(FIXTURES / "mtbench.jsonl"), "--kind", "test"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["records"] == 3


def test_cli_data_inspect_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n')
    result = CliRunner().invoke(app, ["data", "inspect", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {path}:2: field 'output' is missing"
    skipped = CliRunner().invoke(app, ["data", "inspect", str(path), "--on-invalid", "skip"])
    assert skipped.exit_code == 0 and json.loads(skipped.stdout.splitlines()[-1])["skipped"] == 1


def test_cars_packed_text_splits_at_the_first_labelled_input_and_joins_back():
    # a CoachLM instruction that itself starts with "Input:" (the old partition gave instruction "")
    src = "Instruction: Input: a list of repair items and output the total cost. Input: Muffler - $50 "
    assert split_src(src) == ("Input: a list of repair items and output the total cost.", "Muffler - $50", None)
    assert split_src("Instruction: Add 2 and 3.\nResponse: 5\n") == ("Add 2 and 3.", "", "5\n")
    assert split_src(join_src(" Name it. ", "chat", "cat ")) == ("Name it.", "chat", "cat")
    assert join_src("Name it.", "") == "Instruction: Name it. " and split_src("Name it.") is None
    assert strip_response(" Response: 2 + 3 = 5. ") == "2 + 3 = 5." and strip_response("5") == "5"
