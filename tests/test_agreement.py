"""Judge agreement with people on PandaLM's 999 human-annotated pairs: the reference figures from the full file,
and a real run of the command on a small slice with the tiny local model as judge."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ift_select.evaluation.agreement import bundled_agreement
from ift_select.evaluation.labelled import load_pairs
from ift_select.evaluation.qualify import judge_labels, longer_baseline, score_labels
from ift_select.cli import app
from ift_select.core.errors import DataError


@pytest.fixture
def human_path(shared_data):
    return shared_data("pandalm170/testset-v1.json")


def test_load_human_majorities_and_booleans(human_path):
    human, coerced = load_pairs(human_path)
    assert len(human) == 999
    assert human["label"].value_counts().to_dict() == {2: 472, 1: 422, 0: 105}
    assert coerced == 6  # JSON true in items 157-164, kept as the string "True"
    assert (human.loc[human["idx"] == 157, "response1"] == "True").all()
    assert len(load_pairs(human_path, limit=5)[0]) == 5
    sample = load_pairs(human_path, sample=50, seed=1)[0]
    assert len(sample) == 50 and sample["idx"].tolist() == load_pairs(human_path, sample=50, seed=1)[0]["idx"].tolist()


def test_longer_response_baseline_on_the_full_file(human_path):
    human, _ = load_pairs(human_path)
    base = longer_baseline(human)
    assert base["n_non_tie"] == 894 and base["baseline_equal_lengths"] == 7
    assert base["baseline_longer"] == round(599 / 894, 4)  # 67.0%: equal lengths predict nothing
    assert base["baseline_longer_ties_to_2"] == round(601 / 894, 4) == 0.6723  # the 67.2% quoted in issue 6


def test_bundled_judges_reference_figures(human_path):
    human, _ = load_pairs(human_path)
    gpt = bundled_agreement(human, human_path.parent, "gpt35")
    panda = bundled_agreement(human, human_path.parent, "pandalm7b")
    assert gpt["agreement"] == round(697 / 999, 4) and gpt["unparsed"] == 25  # 69.8%, "garbage" counts as a miss
    assert panda["agreement"] == round(667 / 999, 4)  # 66.8%
    assert 0.4 < gpt["kappa"] < 0.6


def test_score_labels_by_hand():
    human = pd.DataFrame({"label": [1, 2, 0, 1]})
    got = score_labels(human, pd.Series([1, 1, 0, None], dtype=object))
    assert got["agreement"] == 0.5 and got["agreement_parsed"] == round(2 / 3, 4)
    assert got["agreement_non_tie"] == round(1 / 3, 4) and got["unparsed"] == 1


def test_judge_labels_use_the_two_order_rule():
    human = pd.DataFrame({"idx": [0, 1, 2]})
    judgments = pd.DataFrame({"test_set": "h", "item_id": ["0", "0", "1", "1", "2", "2"],
                              "order": ["ab", "ba"] * 3, "verdict": ["a", "tie", "a", "b", "b", None]})
    assert judge_labels(judgments, human).tolist() == [1, 0, None]


def test_bad_file_is_named(tmp_path):
    bad = tmp_path / "pairs.json"
    bad.write_text('[{"idx": 0, "instruction": "q", "response1": "a", "response2": 3, '
                   '"annotator1": 1, "annotator2": 1, "annotator3": 2}]')
    with pytest.raises(DataError, match="response2"):
        load_pairs(bad)


def test_agreement_command_with_tiny_local_judge(human_path, tmp_path):
    out = tmp_path / "agreement.json"
    result = CliRunner().invoke(app, [
        "judge", "agreement", "--human", str(human_path), "--limit", "3", "--backend", "local",
        "--model", "tiny-random-llama", "--prompt", "prompts/judge_mt_bench_prefill.txt", "--max-new-tokens", "2",
        "--batch-size", "6", "--no-cache", "--params", str(tmp_path / "none.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    # 3 pairs x 2 orders; a pair whose two responses are equal asks the same prompt twice, and it is sent once
    assert last["n"] == 3 and last["rows"] == 6 and 3 <= last["requests"] <= 6
    for key in ("agreement", "kappa", "baseline", "n", "seconds", "first_position_rate", "gpt35"):
        assert key in last
    assert 0.0 <= last["agreement"] <= 1.0
    assert last["full_file"]["baseline_longer"] == round(599 / 894, 4)
    assert json.loads(out.read_text())["n"] == 3
