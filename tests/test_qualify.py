"""Judge qualification on labelled pairs: the loader, the figures by hand, the verdict, both-order debiasing,
length-controlled win rate and the WS/WR/QS intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ift_select.core.errors import DataError
from ift_select.evaluation.labelled import load_pairs
from ift_select.evaluation.length import fit_logistic, length_controlled
from ift_select.evaluation.metrics import item_outcomes, summarize
from ift_select.evaluation.qualify import qualification, verdict

SAMPLE_PAIRS = "data/sample/judge_pairs.jsonl"


def test_loader_reads_both_label_styles_and_names_bad_lines(tmp_path, repo_root):
    pairs, coerced = load_pairs(repo_root / "tests/fixtures/data/pandalm_pairs.json")
    assert pairs["label"].tolist() == [1, 2, 0, 1, 2, 1]  # 2-of-3 majorities
    assert coerced == 1 and pairs.loc[5, "response1"] == "True" and "cmp_key" in pairs
    constructed, _ = load_pairs(repo_root / SAMPLE_PAIRS)
    assert len(constructed) == 99 and set(constructed["label"]) == {1, 2} and "flaw" in constructed
    bad = tmp_path / "pairs.jsonl"
    for line, message in (('{"instruction": "q", "response1": "a", "response2": "b", "label": 3}', "label must be"),
                          ('{"instruction": "q", "response1": "a", "label": 1}', "missing field response2"),
                          ('{"instruction": "q", "response1": "a", "response2": "b", "annotator1": 0, '
                           '"annotator2": 1, "annotator3": 2}', "no 2-of-3 majority"),
                          ("{not json", "not a JSON line")):
        bad.write_text('{"instruction": "ok", "response1": "a", "response2": "b", "label": 0}\n' + line + "\n")
        with pytest.raises(DataError, match=rf"{bad}:2.*{message}"):
            load_pairs(bad)
    bad.write_text('{"idx": 1, "instruction": "q", "response1": "a", "response2": "b", "label": 1}\n' * 2)
    with pytest.raises(DataError, match="idx 1 appears twice"):
        load_pairs(bad)


def test_constructed_pairs_pit_clean_against_flawed_answers_outside_the_test_set(repo_root):
    rows = [json.loads(line) for line in (repo_root / SAMPLE_PAIRS).read_text().splitlines()]
    pool = [json.loads(line) for line in (repo_root / "data/sample/pool.jsonl").read_text().splitlines()]
    tests = [json.loads(line) for line in (repo_root / "data/sample/test.jsonl").read_text().splitlines()]
    flawed = {(r["instruction"], r["input"]): r["output"] for r in pool if r["_flaw"]}
    for row in rows:
        loser = row["response2"] if row["label"] == 1 else row["response1"]
        assert flawed[(row["instruction"], row["input"])] == loser  # the pool's flawed answer loses
        assert row["response1"] != row["response2"]
    assert len(rows) == len(flawed) == 99
    assert not {(r["instruction"], r["input"]) for r in rows} & {(t["instruction"], t["input"]) for t in tests}


def _labelled(verdicts: list[tuple[str | None, str | None]], labels: list[int], lengths: list[tuple[int, int]]):
    pairs = pd.DataFrame({"idx": [str(i) for i in range(len(labels))], "label": labels,
                          "response1": ["x" * a for a, _ in lengths], "response2": ["x" * b for _, b in lengths]})
    rows = [{"test_set": "q", "item_id": str(i), "model_a": "response1", "model_b": "response2", "order": order,
             "verdict": v, "status": "ok" if v else "unparsed", "len_a": a, "len_b": b}
            for i, ((ab, ba), (a, b)) in enumerate(zip(verdicts, lengths)) for order, v in (("ab", ab), ("ba", ba))]
    return pd.DataFrame(rows), pairs


def test_qualification_figures_by_hand():
    # pair: (verdict ab, verdict ba) in model terms (a = response1), truth, lengths (response1, response2)
    judgments, pairs = _labelled(
        [("a", "a"), ("a", "b"), ("b", "b"), ("a", "tie"), ("b", None), ("b", "b")],
        [1, 1, 1, 2, 2, 0],
        [(50, 10), (10, 50), (10, 50), (30, 20), (5, 9), (40, 40)])
    f = qualification(judgments, pairs, bootstrap=200)
    # judge labels: 1, 0 (one win each: a tie), 2, 1, None (unreadable), 2
    assert f["n"] == 6 and f["agreement"] == round(1 / 6, 4)  # only pair 0 is right
    assert f["agreement_non_tie"] == 0.2 and f["agreement_parsed"] == 0.2 and f["unparsed"] == 1
    assert f["tie_rate"] == 0.2
    # first-position: ab picks a (first) in pairs 0, 1, 3; ba picks b (first) in 1, 2, 5: 6 of 11 readable
    assert f["first_position_rate"] == round(6 / 11, 4)
    assert f["flip_rate"] == 0.4 and f["hard_flip_rate"] == 0.2  # of 5 complete pairs, 1 and 3 flip; 1 hard
    # decided pairs of unequal length: 0 (longer r1, judge 1), 2 (longer r2, judge 2), 3 (longer r1, judge 1)
    assert f["longer_share"] == 1.0
    # longer wins on the 5 non-tie pairs: right on 0 and 4 (r2 longer, truth 2) -> 0.4
    assert f["baseline_longer"] == 0.4 and f["beats_longer"] is False
    lo, hi = f["beats_longer_ci"]
    assert lo <= f["agreement_non_tie"] - f["baseline_longer"] <= hi


def test_verdict_prefers_human_sets():
    sets = {"constructed": {"beats_longer": True}, "pandalm": {"beats_longer": False}}
    assert verdict(sets, {"constructed": "constructed", "pandalm": "human"}) == (False, "human", ["pandalm"])
    assert verdict({"constructed": sets["constructed"]}, {"constructed": "constructed"}) == \
        (True, "constructed", ["constructed"])
    assert verdict({}, {})[0] is False


def _position_judge(n: int, bias: float, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A judge whose log-odds for the answer shown first are content + bias: it says "first" in almost
    every order, so two arg maxes tie, while the content signal is intact."""
    rng = np.random.default_rng(seed)
    content = rng.normal(0, 1, n)
    rows = []
    for k, s in enumerate(content):
        for order, d in (("ab", s + bias), ("ba", s - bias)):  # d: model_a's log-odds in that order
            pa = 1 / (1 + math.exp(-d))
            verdict_ = "a" if pa > 0.5 else "b"
            rows.append({"test_set": "t", "item_id": str(k), "order": order, "verdict": verdict_,
                         "prob_a": pa * 0.9, "prob_b": (1 - pa) * 0.9, "prob_tie": 0.1, "len_a": 10, "len_b": 10})
    return pd.DataFrame(rows), content


def test_debiased_decision_recovers_content_under_position_bias():
    judgments, content = _position_judge(200, bias=3.0)
    paper = item_outcomes(judgments, decision="two_order")
    debiased = item_outcomes(judgments, decision="debiased")
    assert (paper["outcome"] == "tie").mean() > 0.8  # two arg maxes: "first" twice = a contradiction = tie
    truth = np.where(content > 0, "win", "lose")
    by_item = debiased.set_index("item_id").loc[[str(k) for k in range(200)], "outcome"].to_numpy()
    assert (by_item == truth).all()  # the mean log-odds cancels the bias exactly
    assert np.allclose(debiased.set_index("item_id").loc["0", "margin"], content[0], atol=1e-4)
    judgments["decision"] = "debiased"  # the rule travels with the judgments file
    assert summarize(judgments, bootstrap=0)["t"]["decision"] == "debiased"
    text_only = judgments.assign(prob_a=math.nan, prob_b=math.nan)  # no probabilities: the paper's rule
    assert (item_outcomes(text_only, decision="debiased")["outcome"] == paper["outcome"]).all()


def test_vectorised_logistic_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = np.column_stack([np.tanh(rng.normal(size=60)), np.where(np.arange(60) % 2, 1.0, -1.0)])
    y = (rng.random(60) < 1 / (1 + np.exp(-(0.4 + 1.5 * x[:, 0])))).astype(float)
    y[:5] = 0.5  # ties count half
    ours = fit_logistic(x, y, np.ones((1, 60)))[0]
    ref = LogisticRegression(C=1.0).fit(np.vstack([x, x]), np.r_[np.ones(60), np.zeros(60)],
                                        sample_weight=np.r_[y, 1 - y])
    assert ours == pytest.approx(np.r_[ref.intercept_, ref.coef_[0]], abs=1e-3)


def test_length_controlled_win_rate_removes_length_and_position():
    rng = np.random.default_rng(0)
    rows = []
    for k in range(300):
        la, lb = rng.integers(20, 400, 2)
        la += 150  # model_a writes longer answers; the judge always prefers the longer one, or the first shown
        rows += [{"item_id": str(k), "order": o, "y": float(la > lb) if k % 2 else float(o == "ab"),
                  "len_a": la, "len_b": lb} for o in ("ab", "ba")]
    got = length_controlled(pd.DataFrame(rows), bootstrap=300, seed=1)
    assert got["win_rate"] > 0.6 and abs(got["lc_win_rate"] - 0.5) < 0.1
    assert got["length_coef"] > 0 and got["position_coef"] > 0
    lo, hi = got["lc_win_rate_ci"]
    assert lo <= got["lc_win_rate"] <= hi and hi - lo < 0.2
    assert length_controlled(pd.DataFrame(rows), bootstrap=300, seed=1) == got  # seeded


def test_wr_and_qs_intervals():
    rng = np.random.default_rng(2)
    rows = [{"test_set": "t", "item_id": str(k), "order": o, "verdict": v}
            for k in range(80) for o, v in zip(("ab", "ba"), rng.choice(["a", "b", "tie"], 2, p=[0.5, 0.2, 0.3]))]
    s = summarize(pd.DataFrame(rows), bootstrap=400, seed=5)["t"]
    for key in ("ws", "wr", "qs"):
        lo, hi = s[f"{key}_ci"]
        assert lo <= s[key] <= hi and lo < hi
    assert s["flip_rate"] == round(1 - s["consistency"], 4)


@pytest.mark.parametrize("judge, message", [
    ({"max_error_rate": 1.5}, "judge.max_error_rate = 1.5 is not a share"),
    ({"decision": "vote"}, "judge.decision: 'vote' is not one of"),
    ({"qualify": {"sets": {"x": {"path": "p.json", "sample": 0}}}}, "judge.qualify.sets.x.sample = 0"),
    ({"qualify": {"sets": {"x": {"path": "p.json", "kind": "people"}}}}, "judge.qualify.sets.x.kind: 'people'"),
    ({"qualify": {"sets": {"x": {"file": "p.json"}}}}, "unknown setting .*judge.qualify.sets.x.file"),
])
def test_judge_settings_are_checked_naming_the_setting(tmp_path, judge, message):
    import yaml

    from ift_select.core.config import load_params
    from ift_select.core.errors import ConfigError

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"judge": judge}))
    with pytest.raises(ConfigError, match=message):
        load_params(path)
