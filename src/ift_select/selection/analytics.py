"""What each arm's selection looks like: size, cluster coverage, grader scores, keyword-group balance.

AlpaGasus noticed that its grader filtered coding rows harder than the rest (88% dropped against 82% overall),
which cost the model coding skill. ``balance`` shows that per arm: the share of each keyword group of the pool
that the arm kept, beside the arm's overall share. Groups come from keywords in the instruction and input
(``keyword_group``; the first group that matches wins, so "Write a Python function" is coding, not writing).
Cluster coverage counts the pool clusters (CaR's PCA + KMeans, ``car.pool_clusters``) that hold at least one
selected row.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

KEYWORD_GROUPS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
    ("coding", r"\b(code|coding|program(ming)?|python|java(script)?|typescript|c\+\+|sql|html|css|function|"
               r"algorithm|script|debug|compile|regex|snippet|api|json|class|variable|loop)\b"),
    ("math", r"\b(calculate|compute|solve|equation|arithmetic|math(ematics)?|sum|product|multiply|divide|"
             r"percent(age)?|average|integer|fraction|convert)\b|\d\s*[-+*/x×÷^]\s*\d"),
    ("writing", r"\b(write|compose|essay|story|poem|letter|e-?mail|blog|slogan|tweet|rewrite|paraphrase|edit|"
                r"summari[sz]e|summary|translate)\b"),
    ("classification", r"\b(classify|categori[sz]e|identify|detect|label|sentiment|which of)\b"),
    ("lists and ideas", r"\b(list|name|suggest|brainstorm|generate|ideas|examples|tips|ways)\b"),
    ("explain", r"\b(explain|describe|why|how|what|who|when|where)\b"),
))
OTHER = "other"


def keyword_group(text: str) -> str:
    """The first keyword group whose pattern occurs in ``text``, else ``other``."""
    return next((name for name, pattern in KEYWORD_GROUPS if pattern.search(text)), OTHER)


def keyword_groups(pool: pd.DataFrame) -> pd.Series:
    """Keyword group of every pool row (instruction + input), indexed by row id."""
    inputs = pool["input"].fillna("").astype(str) if "input" in pool else ""
    text = pool["instruction"].fillna("").astype(str) + " " + inputs
    return pd.Series([keyword_group(t) for t in text], index=pool["id"].astype(str), name="group")


GROUP_ORDER = [name for name, _ in KEYWORD_GROUPS] + [OTHER]


def balance(groups: pd.Series, selections: dict[str, set[str]], order: list[str] | None = None) -> pd.DataFrame:
    """Per group (``groups``: a group per pool row, indexed by id; rows in ``order``, else sorted): pool rows,
    then ``<arm>`` rows kept and ``<arm> share`` (kept / pool rows) for every arm; a last row ``all`` holds the
    totals."""
    order = order or sorted(groups.astype(str).unique())
    frame = pd.DataFrame({"group": groups.to_numpy()}, index=groups.index)
    table = frame.groupby("group").size().reindex(order).dropna().astype(int).rename("pool").to_frame()
    table.loc["all"] = len(frame)
    for arm, ids in selections.items():
        kept = frame[frame.index.isin(list(ids))].groupby("group").size()
        table[arm] = kept.reindex(table.index).fillna(0).astype(int)
        table.loc["all", arm] = int(kept.sum())
        table[f"{arm} share"] = (table[arm] / table["pool"]).round(4)
    return table.reset_index()


def coverage(labels: pd.Series, selections: dict[str, set[str]]) -> dict[str, int]:
    """Per arm: the number of clusters (``labels`` indexed by pool id) holding at least one selected row."""
    return {arm: int(labels[labels.index.isin(list(ids))].nunique()) for arm, ids in selections.items()}


def score_distribution(scores: pd.DataFrame, ids: set[str], column: str = "score") -> np.ndarray:
    """The parsed grader scores (``status == ok``) of the selected rows."""
    ok = scores[(scores["status"] == "ok") & scores["id"].astype(str).isin(list(ids))]
    return pd.to_numeric(ok[column], errors="coerce").dropna().to_numpy(dtype=np.float64)
