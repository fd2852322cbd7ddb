"""Item outcomes, WS/WR/QS with bootstrap intervals, consistency, flips, length, categories.

Per item (one test item of one pair), each order gives a verdict in model terms (``a`` better, ``b`` better,
``tie``), read from the ``verdict`` column or, when that is absent or empty, from ``score_a``/``score_b``
(a tie when they differ by less than ``tie_margin``). The two orders become the item's outcome for model_a
(win | tie | lose | incomplete) by the judgments' decision rule (``evaluation.decide``: the papers' two-order
rule, or both-order logprob debiasing). Incomplete items (an order missing, unparsed or failed) are left out of
``n`` and of every rate, and counted in ``incomplete`` (a judge that cannot answer must not look like one that
says "tie").

WS = 1 + (win - lose)/n (0..2, 1 = even), WR = win/n, QS = (win + tie)/n; ``ws_ci``/``wr_ci``/``qs_ci`` come
from one seeded percentile bootstrap over items. ``consistency`` = share of complete items whose two verdicts
agree, ``flip_rate`` = 1 - consistency, ``hard_flip_rate`` = share where each order named a different winner.
``first_position_rate`` = share of readable judgments that favour the answer shown first (ties count in the
denominator). ``longer_share`` = of the items won or lost with unequal lengths, the share the longer answer
won. ``win_rate``/``lc_win_rate``: the raw and length-controlled win rate (``evaluation.length``). Rows whose
``model_b`` is ``reference`` are vs-reference results (CaR's protocol): model_a against the test set's answers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ift_select.core.errors import DataError
from ift_select.evaluation.decide import DECISIONS, debiased, log_odds, two_order
from ift_select.evaluation.length import length_controlled, preference
OUTCOME_VALUE = {"win": 1, "tie": 0, "lose": -1}
_VERDICTS = {"a": "a", "model_a": "a", "1": "a", "b": "b", "model_b": "b", "2": "b",
             "tie": "tie", "c": "tie", "draw": "tie", "0": "tie"}


def row_verdicts(judgments: pd.DataFrame, tie_margin: float = 0.5) -> pd.Series:
    """Each row's verdict (a | b | tie) or None (unparsed, failed, or nothing to read)."""
    if "verdict" not in judgments and not {"score_a", "score_b"} <= set(judgments.columns):
        raise DataError("judgments: need a verdict column or score_a and score_b columns")
    given = judgments["verdict"] if "verdict" in judgments else pd.Series([None] * len(judgments),
                                                                          index=judgments.index)
    out = given.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                    else _VERDICTS.get(str(v).strip().lower()))
    if {"score_a", "score_b"} <= set(judgments.columns):
        a = pd.to_numeric(judgments["score_a"], errors="coerce")
        b = pd.to_numeric(judgments["score_b"], errors="coerce")
        from_scores = np.where((a - b).abs() < tie_margin, "tie", np.where(a > b, "a", "b"))
        use = out.isna() & a.notna() & b.notna()
        out = out.where(~use, pd.Series(from_scores, index=judgments.index))
    if "status" in judgments:
        out = out.where(judgments["status"].fillna("ok") == "ok", None)
    return out


def decision_of(judgments: pd.DataFrame, decision: str | None = None) -> str:
    """The decision rule: ``decision`` if given, else the judgments' own ``decision`` column, else two_order."""
    if decision is None and "decision" in judgments and len(judgments):
        decision = str(judgments["decision"].iloc[0])
    decision = decision or "two_order"
    if decision not in DECISIONS:
        raise DataError(f"judgments: decision {decision!r} is not one of {', '.join(DECISIONS)}")
    return decision


def item_outcomes(judgments: pd.DataFrame, tie_margin: float = 0.5, decision: str | None = None) -> pd.DataFrame:
    """One row per (model_a, model_b, test_set, item_id): verdict_ab, verdict_ba, margin (mean log-odds of
    model_a over both orders; NaN without verdict probabilities), outcome, consistent, category, len_a, len_b."""
    missing = [c for c in ("test_set", "item_id", "order") if c not in judgments]
    if missing:
        raise DataError(f"judgments: missing column(s) {', '.join(missing)} (DESIGN.md Judgment schema)")
    rule = decision_of(judgments, decision)
    frame = judgments.copy()
    frame["item_id"] = frame["item_id"].astype(str)
    for col, default in (("model_a", "a"), ("model_b", "b"), ("category", None), ("len_a", math.nan),
                         ("len_b", math.nan), ("prob_a", math.nan), ("prob_b", math.nan)):
        if col not in frame:
            frame[col] = default
    frame["_verdict"] = row_verdicts(frame, tie_margin)
    ok = frame["_verdict"].notna()
    frame["_odds"] = [log_odds(a, b) if k else math.nan
                      for a, b, k in zip(pd.to_numeric(frame["prob_a"], errors="coerce"),
                                         pd.to_numeric(frame["prob_b"], errors="coerce"), ok)]
    bad_orders = sorted(set(frame["order"].astype(str)) - {"ab", "ba"})
    if bad_orders:
        raise DataError(f"judgments: order must be 'ab' or 'ba', got {bad_orders[0]!r}")
    key = ["model_a", "model_b", "test_set", "item_id"]
    dup = frame.duplicated(key + ["order"])
    if dup.any():
        row = frame[dup].iloc[0]
        raise DataError(f"judgments: item {row['test_set']}/{row['item_id']} judged twice in order {row['order']}")
    wide = frame.pivot(index=key, columns="order", values="_verdict").reindex(columns=["ab", "ba"])
    odds = frame.pivot(index=key, columns="order", values="_odds").reindex(columns=["ab", "ba"])
    info = frame.groupby(key, sort=False)[["category", "len_a", "len_b"]].first()
    out = wide.join(info).reset_index().rename(columns={"ab": "verdict_ab", "ba": "verdict_ba"})
    out = out.astype({"verdict_ab": object, "verdict_ba": object})
    out = out.where(out.notna(), None) if len(out) else out
    out["margin"] = odds.mean(axis=1, skipna=False).reindex(pd.MultiIndex.from_frame(out[key])).to_numpy()
    if rule == "debiased":
        out["outcome"] = [debiased(a, b, m) for a, b, m in zip(out["verdict_ab"], out["verdict_ba"], out["margin"])]
    else:
        out["outcome"] = [two_order(a, b) for a, b in zip(out["verdict_ab"], out["verdict_ba"])]
    out["consistent"] = [None if a is None or b is None else a == b
                         for a, b in zip(out["verdict_ab"], out["verdict_ba"])]
    return out


def rates(outcomes: pd.Series) -> dict[str, Any]:
    """win/tie/lose/n and WS, WR, QS of complete outcomes (None when n = 0)."""
    counts = {k: int((outcomes == k).sum()) for k in ("win", "tie", "lose")}
    n = sum(counts.values())
    if n == 0:
        return {**counts, "n": 0, "ws": None, "wr": None, "qs": None}
    return {**counts, "n": n, "ws": round(1 + (counts["win"] - counts["lose"]) / n, 4),
            "wr": round(counts["win"] / n, 4), "qs": round((counts["win"] + counts["tie"]) / n, 4)}


def rate_intervals(outcomes: pd.Series, bootstrap: int = 1000, ci: float = 0.95,
                   seed: int = 0) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals of WS, WR and QS over items, from the same seeded resamples."""
    done = outcomes[outcomes != "incomplete"].to_numpy()
    if len(done) == 0 or bootstrap <= 0:
        return {"ws_ci": None, "wr_ci": None, "qs_ci": None}
    idx = np.random.default_rng(seed).integers(0, len(done), size=(bootstrap, len(done)))
    win = (done == "win")[idx].mean(axis=1)
    lose = (done == "lose")[idx].mean(axis=1)
    values = {"ws_ci": 1 + win - lose, "wr_ci": win, "qs_ci": 1 - lose}
    bounds = [(1 - ci) / 2, 1 - (1 - ci) / 2]
    return {k: [round(float(q), 4) for q in np.quantile(v, bounds)] for k, v in values.items()}


def ws_ci(outcomes: pd.Series, bootstrap: int = 1000, ci: float = 0.95, seed: int = 0) -> list[float] | None:
    """Percentile bootstrap CI of WS over items, seeded (same inputs and seed: same interval)."""
    return rate_intervals(outcomes, bootstrap, ci, seed)["ws_ci"]


def first_position_rate(judgments: pd.DataFrame, verdicts: pd.Series) -> float | None:
    read = verdicts.notna()
    if not read.any():
        return None
    first = ((judgments["order"] == "ab") & (verdicts == "a")) | ((judgments["order"] == "ba") & (verdicts == "b"))
    return round(float(first[read].mean()), 4)


def flips(items: pd.DataFrame) -> dict[str, float | None]:
    """flip_rate (the two orders' verdicts differ) and hard_flip_rate (each order a different winner)."""
    both = items[items["consistent"].notna()]
    if both.empty:
        return {"flip_rate": None, "hard_flip_rate": None}
    hard = [{a, b} == {"a", "b"} for a, b in zip(both["verdict_ab"], both["verdict_ba"])]
    return {"flip_rate": round(1 - float(both["consistent"].astype(bool).mean()), 4),
            "hard_flip_rate": round(float(np.mean(hard)), 4)}


def longer_share(winner_is_a: pd.Series, len_a: pd.Series, len_b: pd.Series) -> float | None:
    """Of the decided items (``winner_is_a`` True/False, None for ties) with unequal lengths, the share won by
    the longer answer."""
    decided = winner_is_a.notna() & len_a.notna() & len_b.notna() & (len_a != len_b)
    if not decided.any():
        return None
    longer_won = (winner_is_a[decided].astype(bool)) == (len_a[decided] > len_b[decided])
    return round(float(longer_won.mean()), 4)


def summarize_one(judgments: pd.DataFrame, bootstrap: int = 1000, ci: float = 0.95, seed: int = 0,
                  tie_margin: float = 0.5, decision: str | None = None) -> dict[str, Any]:
    """All figures for one pair on one test set."""
    rule = decision_of(judgments, decision)
    items = item_outcomes(judgments, tie_margin, rule)
    verdicts = row_verdicts(judgments, tie_margin)
    complete = items[items["outcome"] != "incomplete"]
    status = judgments["status"].fillna("ok") if "status" in judgments else pd.Series("ok", index=judgments.index)
    winner = items["outcome"].map({"win": True, "lose": False})
    result: dict[str, Any] = {
        "model_a": str(items["model_a"].iloc[0]) if len(items) else None,
        "model_b": str(items["model_b"].iloc[0]) if len(items) else None,
        "decision": rule,
        **rates(items["outcome"]),
        **rate_intervals(items["outcome"], bootstrap, ci, seed),
        "consistency": round(float(complete["consistent"].astype(bool).mean()), 4) if len(complete) else None,
        **flips(items),
        "longer_share": longer_share(winner, items["len_a"], items["len_b"]),
        "incomplete": int((items["outcome"] == "incomplete").sum()),
        "judgments": int(len(judgments)),
        "unparsed": int((status == "unparsed").sum()),
        "errors": int((status == "error").sum()),
        "first_position_rate": first_position_rate(judgments, verdicts),
    }
    rows = pd.DataFrame({"item_id": judgments["item_id"].astype(str), "order": judgments["order"],
                         "y": preference(judgments, verdicts, soft=rule == "debiased"),
                         "len_a": judgments["len_a"] if "len_a" in judgments else math.nan,
                         "len_b": judgments["len_b"] if "len_b" in judgments else math.nan})
    result.update(length_controlled(rows, bootstrap, ci, seed))
    for side in ("a", "b"):
        lengths = items[f"len_{side}"].dropna()
        result[f"mean_len_{side}"] = round(float(lengths.mean()), 1) if len(lengths) else None
    result["vs_reference"] = result["model_b"] == "reference"
    cats = items.dropna(subset=["category"])
    result["categories"] = {str(c): rates(g["outcome"]) for c, g in cats.groupby("category")}
    return result


def summarize(judgments: pd.DataFrame, bootstrap: int = 1000, ci: float = 0.95, seed: int = 0,
              tie_margin: float = 0.5, decision: str | None = None) -> dict[str, dict[str, Any]]:
    """Figures keyed by test set, for a judgments frame of one pair (see ``summarize_pairs`` for several):
    win, tie, lose, n, ws, wr, qs and their intervals, consistency, flip rates, longer_share, incomplete,
    unparsed, errors, judgments, first_position_rate, win_rate, lc_win_rate (+ interval), mean_len_a/b,
    vs_reference, categories."""
    pairs = judgments.groupby(["model_a", "model_b"]).ngroups if {"model_a", "model_b"} <= set(judgments) else 1
    if pairs > 1:
        raise DataError(f"judgments hold {pairs} pairs of models: use summarize_pairs")
    if "test_set" not in judgments:
        raise DataError("judgments: missing column test_set (DESIGN.md Judgment schema)")
    return {str(name): summarize_one(group, bootstrap, ci, seed, tie_margin, decision)
            for name, group in judgments.groupby("test_set", sort=True)}


def pair_name(model_a: str, model_b: str) -> str:
    return f"{model_a}_vs_{model_b}"


def summarize_pairs(judgments: pd.DataFrame, **kwargs: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """``summarize`` for each (model_a, model_b) pair, keyed ``<a>_vs_<b>``."""
    if not {"model_a", "model_b"} <= set(judgments):
        return {pair_name("a", "b"): summarize(judgments, **kwargs)}
    return {pair_name(str(a), str(b)): summarize(group, **kwargs)
            for (a, b), group in judgments.groupby(["model_a", "model_b"], sort=True)}


def read_judgments(path: str | Path) -> pd.DataFrame:
    """A judgments file: Parquet, or JSONL (one judgment per line)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such judgments file")
    if p.suffix == ".parquet":
        return pd.read_parquet(p)
    rows = []
    for line_no, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{line_no}: not a JSON line ({exc.msg})") from exc
    if not rows:
        raise DataError(f"{p}: no judgments")
    return pd.DataFrame(rows)
