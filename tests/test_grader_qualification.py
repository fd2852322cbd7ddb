"""Grader qualification: labelled files read as documented, figures that could fail, the CLI's last JSON line
(a real llama.cpp grader), and the qualify_grader figures on flaw labels."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from ift_select.core.errors import DataError
from ift_select.grading.agreement import label_figures, pair_figures, read_labelled, read_pairs
from ift_select.grading.qualify import qualify_pool

PAIRS_CSV = (
    "src,pos,neg\n"
    '"Instruction: Add 2 and 3. ",Response: 2 + 3 = 5.,Response: 6\n'
    '"Instruction: Translate the word. Input: chat ",Response: cat,Response: The French word chat means dog.\n'
)


def test_car_pairs_split_into_instruction_input_and_both_answers(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(PAIRS_CSV)
    rows, index = read_pairs(path)
    assert rows[["instruction", "input", "output"]].values.tolist() == [
        ["Add 2 and 3.", "", "2 + 3 = 5."], ["Add 2 and 3.", "", "6"],
        ["Translate the word.", "chat", "cat"], ["Translate the word.", "chat", "The French word chat means dog."]]
    assert index.tolist() == [[0, 1], [2, 3]]
    (tmp_path / "bad.csv").write_text("src,good\nx,y\n")
    with pytest.raises(DataError, match="bad.csv: no column 'pos'"):
        read_pairs(tmp_path / "bad.csv")


def test_pair_figures_count_ties_half_and_unscored_rows_lowest(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(PAIRS_CSV)
    rows, index = read_pairs(path)
    scores = pd.DataFrame({"score": [4.0, 4.0, np.nan, 1.0], "score_expected": [4.5, 2.0, 3.0, 1.0]})
    figures = pair_figures(scores, rows, index)
    assert figures["columns"]["score"] == {"pairwise_accuracy": 0.25, "pairwise_accuracy_not_longer": 0.0}
    assert figures["columns"]["score_expected"]["pairwise_accuracy"] == 1.0
    assert (figures["length_baseline"], figures["n"], figures["n_not_longer"], figures["unscored"]) == (0.5, 2, 1, 1)


def test_labelled_rows_give_auc_and_name_bad_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"instruction": "Q", "input": "", "output": "long good answer", "label": 1},
            {"instruction": "Q", "input": "", "output": "bad", "label": 0},
            {"instruction": "R", "input": "", "output": "a longer bad answer", "label": 0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame, labels = read_labelled(path)
    figures = label_figures(pd.DataFrame({"score": [5.0, 1.0, 2.0]}), frame, labels)
    assert figures["columns"]["score"]["auc"] == 1.0 and figures["length_baseline"] == 0.5
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"instruction": "Q", "label": "yes"}) + "\n")
    with pytest.raises(DataError, match="rows.jsonl: line 2: needs a string instruction and a 0/1 label"):
        read_labelled(path)


def test_flaw_figures_per_kind_and_what_an_arm_kept():
    pool = pd.DataFrame({"id": list("abcdef"), "output": ["good one", "good two", "", "wrong", "x", "fine"],
                         "_flaw": ["", "", "empty", "wrong_answer", "wrong_answer", ""],
                         "category": ["math", "math", "code", "code", "facts", "facts"]})
    scores = pd.DataFrame({"id": list("fedcba"), "score": [4.0, 4.5, 1.0, 0.0, 5.0, 5.0],
                           "score_expected": [4.0, 1.0, 1.0, 0.0, 5.0, 5.0]})
    figures = qualify_pool(pool, scores, {"alpagasus": {"method": "alpagasus", "column": "score", "tau": 4.0},
                                          "full": {"method": "full"}}, {"alpagasus": {"a", "b", "e", "f"}})
    assert figures["auc"] == {"score": pytest.approx(8 / 9, abs=1e-4), "score_expected": 1.0}
    assert figures["by_flaw"]["empty"]["auc"]["score"] == 1.0 and figures["by_flaw"]["empty"]["n"] == 1
    assert figures["by_flaw"]["wrong_answer"]["auc"]["score"] == pytest.approx(5 / 6, abs=1e-4)
    arm = figures["arms"]["alpagasus"]
    assert (arm["kept"], arm["flawed_share"], arm["pool_flawed_share"]) == (4, 0.25, 0.5)
    assert arm["categories_dropped"] == {"code": {"rows": 2, "flawed_share": 1.0}}
    assert list(figures["arms"]) == ["alpagasus"]


@pytest.mark.slow
def test_grade_agreement_runs_the_configured_grader(tmp_path, repo_root):
    """`ift-select grade agreement` on CaR-style pairs with SmolLM2 served by llama.cpp."""
    from llamacpp import llama_server, smollm2_gguf

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(PAIRS_CSV)
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    with llama_server(smollm2_gguf()) as url:
        params["score"].update(backend="openai", model="smollm2", max_new_tokens=4, iqs_model=None, graders={},
                               prompt=str(repo_root / "prompts/alpagasus_rating_prefill.txt"))
        params["score"]["openai"].update(base_url=url, prefill="send", concurrency=1, timeout_s=600)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        env = {"IFT_SELECT_CACHE_DIR": str(tmp_path / "cache")}
        run = subprocess.run([sys.executable, "-m", "ift_select.cli", "grade", "agreement", "--pairs", str(pairs),
                              "--column", "score_expected"], cwd=tmp_path, capture_output=True,
                             text=True, env={**__import__("os").environ, **env}, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["n"] == 2 and result["metric"] == "pairwise_accuracy" and result["column"] == "score_expected"
    assert 0 <= result["pairwise_accuracy"] <= 1 and 0 <= result["length_baseline"] <= 1
    assert set(result["columns"]) == {"score", "score_expected"} and result["requests"] >= 4


def test_the_report_shows_each_grader_number_beside_its_agreement_and_length(tmp_path):
    from test_report import make_inputs

    from ift_select.reporting.report import build_report

    inputs = make_inputs(tmp_path)
    pool, scores = pd.read_parquet(inputs.pool), pd.read_parquet(inputs.scores)
    kept = set(pd.read_parquet(inputs.selections["alpagasus"])["id"])
    qualify = qualify_pool(pool, scores, {"alpagasus": {"method": "alpagasus", "column": "score", "tau": 3.0}},
                           {"alpagasus": kept})
    pairs = {"file": "APE_valid.csv", "metric": "pairwise_accuracy", "n": 254, "n_not_longer": 51, "unscored": 0,
             "length_baseline": 0.799, "grader": "openai:qwen", "columns": {
                 "score": {"pairwise_accuracy": 0.61, "pairwise_accuracy_not_longer": 0.4}}}
    for name, data in (("qualify_grader", qualify), ("qualify_pairs_car_valid", pairs)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        inputs.metrics[name] = tmp_path / f"{name}.json"
    summary = build_report(inputs, tmp_path / "reports")
    text = (tmp_path / "reports/report.md").read_text()
    section = text[text.index("## Grader qualification"):]
    assert "| output length (baseline) |" in section and "| score | " in section
    assert "| alpagasus | score >= 3.0 |" in section and "code (10 rows, 100% flawed)" in section  # dropped whole
    assert "car_valid: APE_valid.csv (254 pairs" in section and "| score | 61.0% | 40.0% |" in section
    assert "| output length (baseline) | 79.9% |" in section
    assert summary["grader_qualification"]["auc"]["score"] == qualify["auc"]["score"]
    assert summary["grader_qualification"]["flawed_share"]["alpagasus"] == 0.0
