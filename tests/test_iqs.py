"""IQS: text form, label pairing, a short real training run, eval figures (CLI and library)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import ift_select.grading.iqs as iqs
import ift_select.grading.iqs_finetune as iqs_finetune
from ift_select.commands import iqs as iqs_cmd
from ift_select.core.errors import DataError

LABELS = "car_expert_revised_scores/APE_score_train.csv"
VALID = "car_expert_revised_scores/APE_score_valid.csv"
PAIRS = "car_expert_revised_pairs/APE_valid.csv"


def cli() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    iqs_cmd.register(app)
    return app


def test_iqs_text_matches_the_label_files(shared_data) -> None:
    labels = iqs.read_labels(shared_data(VALID))["src"]
    assert iqs.iqs_text("List four countries in Africa", "", "Egypt, South Africa, Nigeria, Morocco.") in set(labels)
    with_input = iqs.iqs_text(
        "Given natural language sentences, identify the relations between entities.",
        "Sharad and Sayansh are brothers.",
        "The relation between Sharad and Sayansh is brothers.",
    )
    assert with_input in set(labels)


def test_label_pairs_rebuild_cars_pairs_file(shared_data) -> None:
    labels = iqs.read_labels(shared_data(VALID))
    pairs = pd.read_csv(shared_data(PAIRS))
    found = iqs.label_pairs(labels)
    assert len(found) == len(pairs) == 254
    src = labels["src"].tolist()
    assert [src[hi] for _, hi in found] == (pairs["src"] + pairs["pos"]).tolist()
    assert [iqs.same_instruction(src[hi], src[lo]) for lo, hi in found] == (pairs["src"] + pairs["neg"]).tolist()


def test_pairwise_figures_count_strict_wins_and_not_longer() -> None:
    pos, neg = np.array([2.0, 1.0, 0.5, 3.0]), np.array([1.0, 1.0, 0.7, 0.0])
    out = iqs.pairwise_figures(pos, neg, np.array([10, 5, 5, 20]), np.array([5, 5, 9, 30]))
    assert out["n"] == 4 and out["pairwise_accuracy"] == 0.5  # a tie is not a win
    assert out["n_not_longer"] == 3 and out["pairwise_accuracy_not_longer"] == round(1 / 3, 4)


def test_pairwise_eval_with_a_known_model(tmp_path, monkeypatch) -> None:
    """A stand-in model that scores a text by its number of '!' fixes every expected figure."""
    pairs = pd.DataFrame(
        {
            "src": ["Instruction: a ", "Instruction: b ", "Instruction: c ", "Instruction: d!!! "],
            "pos": ["Response: ok!!", "Response: no", "Response: long answer!", "Response: x"],
            "neg": ["Response: fine", "Response: better!", "Response: short", "Response: longer one"],
        }
    )
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    monkeypatch.setattr(iqs, "load_iqs", lambda model_dir: None)
    monkeypatch.setattr(iqs, "score_texts", lambda model, texts, **_: np.array([t.count("!") for t in texts], dtype=np.float32))
    out = iqs.pairwise_eval(tmp_path, tmp_path / "pairs.csv")
    # wins: pair 0 (2 > 0), pair 2 (1 > 0); pair 1 loses; pair 3 ties (3 = 3, the instruction's '!' count on both)
    assert out["n"] == 4 and out["pairwise_accuracy"] == 0.5
    # pos not longer than neg: pairs 0 (14 <= 14), 1 and 3
    assert out["n_not_longer"] == 3 and out["pairwise_accuracy_not_longer"] == round(1 / 3, 4)


def test_batch_ranks_the_revised_text_above_the_raw_response_and_a_redundant_copy() -> None:
    src = ["Instruction: say hi Response: Hello. How are you?", "Instruction: Say hi. Response: Hi!", "Instruction: x Response: y"]
    score = [0.0, 1.0, 1.0]
    weights = {(0, 1): 2.0}
    b = iqs_finetune._batch([(0, 1), (2,)], src, score, weights, redundant=True)
    assert b.texts[:4] == [src[0], src[1], "Instruction: Say hi. Response: Hello. How are you?", src[2]]
    assert b.targets == [0.0, 1.0, 0.0, 1.0]  # MSE targets: raw 0, revised 1, raw response under the revised instruction 0
    (hi, lo), (hi2, lo2) = b.rank
    assert b.texts[hi] == src[1] and b.texts[lo] == "Instruction: Say hi. Response: Hello. How are you?"
    assert hi2 == hi and b.texts[lo2] == "Instruction: Say hi. Response: Hi! Hello."  # longer, redundant, ranked lower
    assert b.rank_weights == [2.0, 2.0]
    assert len(iqs_finetune._batch([(0, 1)], src, score, weights).rank) == 1  # no redundant copy unless asked


def test_bad_label_file_names_file_and_line(tmp_path) -> None:
    (tmp_path / "l.csv").write_text("src,score\nInstruction: a Response: b,0\nInstruction: a Response: c,high\n")
    with pytest.raises(DataError, match=r"l\.csv: line 3"):
        iqs.read_labels(tmp_path / "l.csv")
    (tmp_path / "p.csv").write_text("src,pos\nx,y\n")
    with pytest.raises(DataError, match="'neg'"):
        iqs.pairwise_eval(tmp_path, tmp_path / "p.csv")


@pytest.mark.slow
def test_train_then_eval_on_a_slice_of_the_real_labels(shared_data, tmp_path) -> None:
    out = tmp_path / "iqs"
    runner = CliRunner()
    args = ["iqs", "train", "--labels", str(shared_data(LABELS)), "--valid", str(shared_data(VALID)), "--out", str(out),
            "--method", "finetune", "--epochs", "1", "--batch-pairs", "4", "--max-rows", "16", "--max-length", "64"]
    result = runner.invoke(cli(), args)
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout.strip().splitlines()[-1])
    # one of the first 8 pairs has the same response before and after revision: it cannot be ranked, and is counted
    assert trained["train_pairs"] == 7 and trained["identical_pairs_dropped"] == 1 and trained["valid_pairs"] == 8
    assert trained["steps"] == 2
    assert 0.0 <= trained["valid_pairwise_accuracy"] <= 1.0
    assert (out / "iqs.json").exists() and (out / "head.pt").exists() and (out / "encoder" / "config.json").exists()
    record = json.loads((out / "iqs.json").read_text())
    assert record["format"] == iqs.FORMAT and record["max_length"] == 64 and len(record["history"]) == 2

    pairs = pd.read_csv(shared_data(PAIRS)).iloc[:6]
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    result = runner.invoke(cli(), ["iqs", "eval", "--model", str(out), "--pairs", str(tmp_path / "pairs.csv")])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"pairwise_accuracy", "pairwise_accuracy_not_longer", "n", "n_not_longer", "n_identical", "seconds"} <= set(figures)
    assert figures["n_identical"] == int((pairs["pos"] == pairs["neg"]).sum())
    # the CLI's figure is the library's, recomputed from the checkpoint's own scores
    model = iqs.load_iqs(out)
    pos = iqs.score_texts(model, (pairs["src"] + pairs["pos"]).tolist())
    neg = iqs.score_texts(model, (pairs["src"] + pairs["neg"]).tolist())
    assert figures["pairwise_accuracy"] == round(float((pos > neg).mean()), 4)
    rows = pd.DataFrame({"instruction": ["List four countries in Africa"], "input": [""], "output": ["Egypt."]})
    assert iqs.score_rows(rows, out).shape == (1,)
