"""The project's own sample pool and test set: deterministic, loadable, flawed as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ift_select.data import load_pool, load_test_set

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
FLAWS = {"wrong_answer", "irrelevant", "truncated", "empty", "restates"}


@pytest.fixture(scope="module")
def pool_rows() -> list[dict]:
    return [json.loads(line) for line in (SAMPLE / "pool.jsonl").read_text(encoding="utf-8").splitlines()]


def test_generator_is_deterministic_and_matches_the_committed_files(tmp_path):
    result = subprocess.run([sys.executable, str(SAMPLE / "generate.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["pool_rows"], summary["test_items"], summary["judge_pairs"]) == (300, 40, 99)
    for name in ("pool.jsonl", "test.jsonl", "judge_pairs.jsonl"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), f"{name} differs: rerun generate.py"


def test_pool_loads_with_three_duplicates():
    frame, report = load_pool(SAMPLE / "pool.jsonl")
    assert (report.format, report.records, report.kept, report.duplicates, report.skipped) == (
        "jsonl", 300, 297, 3, 0)
    assert list(frame.columns) == ["id", "instruction", "input", "output", "source", "source_line", "category",
                                   "_flaw"]


def test_about_a_third_is_flawed_with_every_kind(pool_rows):
    flaws = Counter(row["_flaw"] for row in pool_rows)
    assert set(flaws) - {""} == FLAWS
    flawed = sum(n for flaw, n in flaws.items() if flaw)
    assert 0.30 <= flawed / len(pool_rows) <= 0.37
    empty = [row for row in pool_rows if row["_flaw"] == "empty"]
    assert empty and all(row["output"] == "" for row in empty)


def test_pool_is_varied_and_short(pool_rows):
    categories = Counter(row["category"] for row in pool_rows)
    assert len(categories) >= 8 and min(categories.values()) >= 10
    words = sorted(len(row["output"].split()) for row in pool_rows)
    assert words[-1] <= 60
    assert len({row["instruction"] for row in pool_rows}) > 150
    assert sum(bool(row["input"]) for row in pool_rows) > 30


def test_test_set_has_40_categorised_items_not_in_the_pool(pool_rows):
    frame, report = load_test_set(SAMPLE / "test.jsonl", "sample")
    assert (report.format, len(frame)) == ("generic", 40)
    assert frame["category"].notna().all() and frame["category"].nunique() >= 8
    assert frame["id"].tolist()[:2] == ["sample/sample-01", "sample/sample-02"]
    pool_pairs = {(row["instruction"], row["input"]) for row in pool_rows}
    assert not pool_pairs & set(zip(frame["instruction"], frame["input"]))


def test_another_seed_writes_another_pool_of_the_same_kind(tmp_path):
    subprocess.run([sys.executable, str(SAMPLE / "generate.py"), "--seed", "2024", "--out", str(tmp_path)],
                   capture_output=True, text=True, check=True)
    assert (tmp_path / "pool.jsonl").read_bytes() != (SAMPLE / "pool.jsonl").read_bytes()
    frame, report = load_pool(tmp_path / "pool.jsonl")
    assert (report.records, report.kept, report.duplicates) == (300, 297, 3)
    assert (frame["_flaw"] != "").sum() == 99 and set(frame["_flaw"]) - {""} <= FLAWS
