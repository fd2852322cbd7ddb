"""Win/tie/lose by the two-order rule, WS/WR/QS, bootstrap CI, consistency, categories, LC preference, and the
`ift-select metrics` command, on small tables checked by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ift_select.cli import app
from ift_select.core.errors import DataError
from ift_select.evaluation.metrics import item_outcomes, summarize, summarize_pairs

# (item, verdict in order ab, verdict in order ba, category) -> outcome for model_a, by the paper's rule
HAND_TABLE = [
    ("i1", "a", "a", "x", "win"),      # wins both orders
    ("i2", "a", "tie", "x", "win"),    # wins once, ties once
    ("i3", "tie", "a", "y", "win"),
    ("i4", "b", "b", "y", "lose"),
    ("i5", "tie", "b", "y", "lose"),
    ("i6", "tie", "tie", "y", "tie"),
    ("i7", "a", "b", "x", "tie"),      # contradicts itself when positions swap: a tie
    ("i8", "b", None, "x", "incomplete"),  # an unreadable order: left out of n, counted
]


def judgments_from(table, model_a="A", model_b="B", test_set="vicuna") -> pd.DataFrame:
    rows = []
    for item, ab, ba, cat, _ in table:
        for order, verdict in (("ab", ab), ("ba", ba)):
            rows.append({"test_set": test_set, "item_id": item, "model_a": model_a, "model_b": model_b,
                         "order": order, "verdict": verdict, "status": "ok" if verdict else "unparsed",
                         "category": cat, "raw": "", "len_a": 100, "len_b": 100})
    return pd.DataFrame(rows)


def test_outcomes_by_hand():
    items = item_outcomes(judgments_from(HAND_TABLE)).set_index("item_id")
    assert items["outcome"].to_dict() == {row[0]: row[4] for row in HAND_TABLE}


def test_rates_by_hand():
    s = summarize(judgments_from(HAND_TABLE), bootstrap=200)["vicuna"]
    # win 3 (i1-i3), lose 2 (i4, i5), tie 2 (i6, i7), n 7; i8 incomplete
    assert (s["win"], s["tie"], s["lose"], s["n"], s["incomplete"]) == (3, 2, 2, 7, 1)
    assert s["ws"] == round(1 + (3 - 2) / 7, 4) == 1.1429
    assert s["wr"] == round(3 / 7, 4) and s["qs"] == round(5 / 7, 4)
    # both orders agree on i1, i4, i6 of the 7 complete items
    assert s["consistency"] == round(3 / 7, 4)
    assert s["unparsed"] == 1 and s["judgments"] == 16
    # categories: x has i1, i2, i7 (i8 incomplete) -> 2 wins 1 tie; y has i3, i4, i5, i6
    assert s["categories"]["x"] == {"win": 2, "tie": 1, "lose": 0, "n": 3, "ws": 1.6667, "wr": 0.6667, "qs": 1.0}
    assert (s["categories"]["y"]["win"], s["categories"]["y"]["lose"], s["categories"]["y"]["tie"]) == (1, 2, 1)


def test_scores_instead_of_verdicts():
    rows = [("i1", (8, 6), (9, 7)), ("i2", (7, 7), (8, 6)), ("i3", (5, 9), (5, 5)), ("i4", (6, 6), (6, 6.2))]
    frame = pd.DataFrame([{"test_set": "koala", "item_id": i, "order": o, "score_a": a, "score_b": b}
                          for i, ab, ba in rows for o, (a, b) in (("ab", ab), ("ba", ba))])
    s = summarize(frame, bootstrap=0)["koala"]
    assert (s["win"], s["tie"], s["lose"]) == (2, 1, 1)  # i4: 6 vs 6.2 is within the 0.5 tie margin
    assert s["ws"] == 1.25 and s["ws_ci"] is None
    assert summarize(frame, bootstrap=0, tie_margin=0.1)["koala"]["lose"] == 2


def test_bootstrap_is_seeded_and_contains_ws():
    rng = np.random.default_rng(1)
    table = [(f"i{k}", *rng.choice(["a", "b", "tie"], 2), "x", "") for k in range(60)]
    frame = judgments_from(table)
    first = summarize(frame, bootstrap=500, seed=7)["vicuna"]
    again = summarize(frame, bootstrap=500, seed=7)["vicuna"]
    other = summarize(frame, bootstrap=500, seed=8)["vicuna"]
    assert first["ws_ci"] == again["ws_ci"]
    assert first["ws_ci"] != other["ws_ci"]
    lo, hi = first["ws_ci"]
    assert lo <= first["ws"] <= hi and 0 <= lo < hi <= 2


def _length_judge(n: int, longer_a: int, seed: int = 0) -> pd.DataFrame:
    """A judge that always prefers the longer answer; model_a is longer by ``longer_a`` chars on average."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        la, lb = rng.integers(20, 400, 2)
        la += longer_a
        verdict = "a" if la > lb else "b"
        rows += [{"test_set": "t", "item_id": k, "order": o, "verdict": verdict, "len_a": la, "len_b": lb}
                 for o in ("ab", "ba")]
    return pd.DataFrame(rows)


def test_length_controlled_preference_removes_a_pure_length_judge():
    s = summarize(_length_judge(300, longer_a=150), bootstrap=0)["t"]
    assert s["win_rate"] > 0.7  # the raw preference says model_a is much better ...
    assert abs(s["lc_win_rate"] - 0.5) < 0.1  # ... at equal length there is nothing left
    assert s["mean_len_a"] > s["mean_len_b"]


def test_length_controlled_keeps_a_real_preference():
    frame = _length_judge(300, longer_a=0)
    frame.loc[frame["item_id"] % 3 == 0, "verdict"] = "a"  # model_a better on a third of items, whatever length
    s = summarize(frame, bootstrap=0)["t"]
    assert s["lc_win_rate"] > 0.6


def test_first_position_rate_and_reference_mode():
    table = [(f"i{k}", "a", "b", "x", "") for k in range(4)]  # always the first position
    s = summarize(judgments_from(table, model_b="reference"), bootstrap=0)["vicuna"]
    assert s["first_position_rate"] == 1.0 and s["consistency"] == 0.0 and s["tie"] == 4
    assert s["vs_reference"] is True


def test_several_pairs_and_bad_input():
    both = pd.concat([judgments_from(HAND_TABLE), judgments_from(HAND_TABLE, model_a="C")])
    with pytest.raises(DataError, match="summarize_pairs"):
        summarize(both)
    assert set(summarize_pairs(both, bootstrap=0)) == {"A_vs_B", "C_vs_B"}
    with pytest.raises(DataError, match="order"):
        summarize(judgments_from(HAND_TABLE).drop(columns=["order"]))
    with pytest.raises(DataError, match="judged twice"):
        summarize(pd.concat([judgments_from(HAND_TABLE)] * 2))


def test_metrics_command_on_jsonl(tmp_path):
    path = tmp_path / "judgments.jsonl"
    path.write_text(judgments_from(HAND_TABLE).to_json(orient="records", lines=True))
    result = CliRunner().invoke(app, ["metrics", str(path), "--bootstrap", "100", "--seed", "3"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert list(last) == ["vicuna"]
    for key in ("win", "tie", "lose", "n", "ws", "wr", "qs", "ws_ci", "consistency"):
        assert key in last["vicuna"]
    assert last["vicuna"]["ws"] == 1.1429
    parquet = tmp_path / "j.parquet"
    judgments_from(HAND_TABLE).to_parquet(parquet)
    again = CliRunner().invoke(app, ["metrics", str(parquet), "--bootstrap", "100", "--seed", "3"])
    assert json.loads(again.output.strip().splitlines()[-1]) == last


def test_metrics_command_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"test_set": "t"}\nnot json\n')
    result = CliRunner().invoke(app, ["metrics", str(bad)])
    assert result.exit_code == 1 and f"{bad}:2" in result.output
