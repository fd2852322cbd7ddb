"""Win/tie/lose by the paper's two-order rule, WS/WR/QS, bootstrap CI, consistency, categories, LC preference.

Per item (one test item of one pair), each order gives a verdict in model terms (``a`` better, ``b`` better,
``tie``), read from the ``verdict`` column or, when that is absent or empty, from ``score_a``/``score_b``
(a tie when they differ by less than ``tie_margin``). The item's outcome for model_a:

- win: wins both orders, or wins one and ties the other; lose: the mirror; tie: anything else (two ties, or
  one win and one loss: the judge contradicted itself when the positions were swapped);
- incomplete: an order is missing, unparsed or failed. Such items are left out of ``n`` and of every rate,
  and counted in ``incomplete`` (a judge that cannot answer must not look like one that says "tie").

WS = 1 + (win - lose)/n (0..2, 1 = even), WR = win/n, QS = (win + tie)/n; ``ws_ci`` is a seeded percentile
bootstrap over items. ``consistency`` = share of complete items whose two orders agree. ``first_position_rate``
= share of readable judgments that favour the answer shown first (0.5-ish for an unbiased judge, ties aside).
``lc_pref``: the judge's preference for model_a (ties count half) at zero length difference, from a logistic
regression of the outcome on tanh(length difference / its standard deviation), in the spirit of AlpacaEval's
length-controlled win rate; ``pref`` is the same preference without the length control. Rows whose
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


def _combine(ab: str | None, ba: str | None) -> str:
    if ab is None or ba is None:
        return "incomplete"
    votes = (ab, ba)
    if "a" in votes and "b" not in votes:
        return "win"
    if "b" in votes and "a" not in votes:
        return "lose"
    return "tie"


def item_outcomes(judgments: pd.DataFrame, tie_margin: float = 0.5) -> pd.DataFrame:
    """One row per (model_a, model_b, test_set, item_id): verdict_ab, verdict_ba, outcome, consistent,
    category, len_a, len_b (NaN when unknown)."""
    missing = [c for c in ("test_set", "item_id", "order") if c not in judgments]
    if missing:
        raise DataError(f"judgments: missing column(s) {', '.join(missing)} (DESIGN.md Judgment schema)")
    frame = judgments.copy()
    frame["item_id"] = frame["item_id"].astype(str)
    for col, default in (("model_a", "a"), ("model_b", "b"), ("category", None), ("len_a", math.nan),
                         ("len_b", math.nan)):
        if col not in frame:
            frame[col] = default
    frame["_verdict"] = row_verdicts(frame, tie_margin)
    bad_orders = sorted(set(frame["order"].astype(str)) - {"ab", "ba"})
    if bad_orders:
        raise DataError(f"judgments: order must be 'ab' or 'ba', got {bad_orders[0]!r}")
    key = ["model_a", "model_b", "test_set", "item_id"]
    dup = frame.duplicated(key + ["order"])
    if dup.any():
        row = frame[dup].iloc[0]
        raise DataError(f"judgments: item {row['test_set']}/{row['item_id']} judged twice in order {row['order']}")
    wide = frame.pivot(index=key, columns="order", values="_verdict").reindex(columns=["ab", "ba"])
    info = frame.groupby(key, sort=False)[["category", "len_a", "len_b"]].first()
    out = wide.join(info).reset_index().rename(columns={"ab": "verdict_ab", "ba": "verdict_ba"})
    out = out.astype({"verdict_ab": object, "verdict_ba": object})
    out = out.where(out.notna(), None) if len(out) else out
    out["outcome"] = [_combine(a, b) for a, b in zip(out["verdict_ab"], out["verdict_ba"])]
    out["consistent"] = [None if o == "incomplete" else a == b
                         for o, a, b in zip(out["outcome"], out["verdict_ab"], out["verdict_ba"])]
    return out


def rates(outcomes: pd.Series) -> dict[str, Any]:
    """win/tie/lose/n and WS, WR, QS of complete outcomes (None when n = 0)."""
    counts = {k: int((outcomes == k).sum()) for k in ("win", "tie", "lose")}
    n = sum(counts.values())
    if n == 0:
        return {**counts, "n": 0, "ws": None, "wr": None, "qs": None}
    return {**counts, "n": n, "ws": round(1 + (counts["win"] - counts["lose"]) / n, 4),
            "wr": round(counts["win"] / n, 4), "qs": round((counts["win"] + counts["tie"]) / n, 4)}


def ws_ci(outcomes: pd.Series, bootstrap: int = 1000, ci: float = 0.95, seed: int = 0) -> list[float] | None:
    """Percentile bootstrap CI of WS over items, seeded (same inputs and seed: same interval)."""
    values = outcomes[outcomes != "incomplete"].map(OUTCOME_VALUE).to_numpy(dtype=float)
    if len(values) == 0 or bootstrap <= 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(bootstrap, len(values)))
    ws = 1 + values[idx].mean(axis=1)
    lo, hi = np.quantile(ws, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def length_controlled(outcomes: pd.DataFrame) -> float | None:
    """Preference for model_a at zero length difference (ties count half); None without lengths, or when
    there is nothing to fit (one outcome class only and no length variation)."""
    done = outcomes[(outcomes["outcome"] != "incomplete")].dropna(subset=["len_a", "len_b"])
    if len(done) < 2:
        return None
    diff = (done["len_a"] - done["len_b"]).to_numpy(dtype=float)
    scale = diff.std() or 1.0
    x = np.tanh(diff / scale).reshape(-1, 1)
    y_win = (done["outcome"] == "win").to_numpy(dtype=float) + 0.5 * (done["outcome"] == "tie").to_numpy()
    if np.all(y_win == y_win[0]):
        return round(float(y_win[0]), 4)
    from sklearn.linear_model import LogisticRegression

    xs = np.vstack([x, x])  # each item twice: as a "model_a better" row with weight y, and "worse" with 1 - y
    ys = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    weights = np.concatenate([y_win, 1 - y_win])
    keep = weights > 0
    model = LogisticRegression(C=1.0).fit(xs[keep], ys[keep], sample_weight=weights[keep])
    return round(float(1 / (1 + math.exp(-model.intercept_[0]))), 4)


def _first_position_rate(judgments: pd.DataFrame, verdicts: pd.Series) -> float | None:
    read = verdicts.notna()
    if not read.any():
        return None
    first = ((judgments["order"] == "ab") & (verdicts == "a")) | ((judgments["order"] == "ba") & (verdicts == "b"))
    return round(float(first[read].mean()), 4)


def summarize_one(judgments: pd.DataFrame, bootstrap: int = 1000, ci: float = 0.95, seed: int = 0,
                  tie_margin: float = 0.5) -> dict[str, Any]:
    """All figures for one pair on one test set."""
    items = item_outcomes(judgments, tie_margin)
    verdicts = row_verdicts(judgments, tie_margin)
    complete = items[items["outcome"] != "incomplete"]
    status = judgments["status"].fillna("ok") if "status" in judgments else pd.Series("ok", index=judgments.index)
    result: dict[str, Any] = {
        "model_a": str(items["model_a"].iloc[0]) if len(items) else None,
        "model_b": str(items["model_b"].iloc[0]) if len(items) else None,
        **rates(items["outcome"]),
        "ws_ci": ws_ci(items["outcome"], bootstrap, ci, seed),
        "consistency": round(float(complete["consistent"].astype(bool).mean()), 4) if len(complete) else None,
        "incomplete": int((items["outcome"] == "incomplete").sum()),
        "judgments": int(len(judgments)),
        "unparsed": int((status == "unparsed").sum()),
        "errors": int((status == "error").sum()),
        "first_position_rate": _first_position_rate(judgments, verdicts),
    }
    n = result["n"]
    result["pref"] = round((result["win"] + 0.5 * result["tie"]) / n, 4) if n else None
    result["lc_pref"] = length_controlled(items)
    for side in ("a", "b"):
        lengths = items[f"len_{side}"].dropna()
        result[f"mean_len_{side}"] = round(float(lengths.mean()), 1) if len(lengths) else None
    result["vs_reference"] = result["model_b"] == "reference"
    cats = items.dropna(subset=["category"])
    result["categories"] = {str(c): rates(g["outcome"]) for c, g in cats.groupby("category")}
    return result


def summarize(judgments: pd.DataFrame, bootstrap: int = 1000, ci: float = 0.95, seed: int = 0,
              tie_margin: float = 0.5) -> dict[str, dict[str, Any]]:
    """Figures keyed by test set, for a judgments frame of one pair (see ``summarize_pairs`` for several):
    win, tie, lose, n, ws, wr, qs, ws_ci, consistency, plus incomplete, unparsed, errors, judgments,
    first_position_rate, pref, lc_pref, mean_len_a/b, vs_reference, categories."""
    pairs = judgments.groupby(["model_a", "model_b"]).ngroups if {"model_a", "model_b"} <= set(judgments) else 1
    if pairs > 1:
        raise DataError(f"judgments hold {pairs} pairs of models: use summarize_pairs")
    if "test_set" not in judgments:
        raise DataError("judgments: missing column test_set (DESIGN.md Judgment schema)")
    return {str(name): summarize_one(group, bootstrap, ci, seed, tie_margin)
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
