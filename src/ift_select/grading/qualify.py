"""Grader qualification on a pool with flaw labels (the sample's ``_flaw``: "" for clean rows, else the kind).

Measured, never used to choose anything in the pipeline: the AUC of every grader column separating clean rows
from flawed ones (overall and per flaw kind), the same for output length, and for every alpagasus arm the
flawed share among the rows it kept against the pool's, and the categories it dropped whole with their flawed
share in the pool.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ift_select.grading.agreement import auc, columns_of

LABEL = "_flaw"


def flaw_figures(pool: pd.DataFrame, scores: pd.DataFrame) -> dict[str, Any]:
    """AUC (clean = positive) of each grader column and of output length, overall and per flaw kind."""
    rows = pool[["id", LABEL, "output"]].merge(scores, on="id", how="left", validate="one_to_one")
    flaw = rows[LABEL].fillna("").astype(str)
    clean = (flaw == "").to_numpy().astype(int)
    length = rows["output"].str.len()
    columns = columns_of(scores)
    figures: dict[str, Any] = {
        "rows": len(rows), "flawed": int((1 - clean).sum()), "length_auc": auc(length, clean),
        "auc": {c: auc(rows[c], clean) for c in columns},
        "unscored": {c: int(rows[c].isna().sum()) for c in columns}, "by_flaw": {}}
    for kind in sorted(set(flaw) - {""}):
        keep = ((flaw == "") | (flaw == kind)).to_numpy()
        figures["by_flaw"][kind] = {"n": int((flaw == kind).sum()), "length_auc": auc(length[keep], clean[keep]),
                                    "auc": {c: auc(rows[c][keep], clean[keep]) for c in columns}}
    return figures


def arm_figures(pool: pd.DataFrame, kept_ids: set[str], settings: dict[str, Any]) -> dict[str, Any]:
    """What one alpagasus arm kept: its flawed share beside the pool's, and the categories it dropped whole."""
    flawed = pool[LABEL].fillna("").astype(str) != ""
    kept = pool["id"].astype(str).isin(kept_ids)
    out: dict[str, Any] = {"column": settings.get("column"), "tau": settings.get("tau"), "kept": int(kept.sum()),
                           "flawed_share": round(float(flawed[kept].mean()), 4) if kept.any() else None,
                           "pool_flawed_share": round(float(flawed.mean()), 4), "categories_dropped": {}}
    if "category" in pool:
        for category, group in pool.groupby(pool["category"].fillna("").astype(str)):
            if not kept[group.index].any():
                out["categories_dropped"][category] = {"rows": len(group),
                                                       "flawed_share": round(float(flawed[group.index].mean()), 4)}
    return out


def qualify_pool(pool: pd.DataFrame, scores: pd.DataFrame, arms: dict[str, dict[str, Any]],
                 selections: dict[str, set[str]]) -> dict[str, Any]:
    """metrics/qualify_grader.json: ``flaw_figures`` plus ``arm_figures`` per alpagasus arm."""
    if LABEL not in pool:
        return {"labels": None, "note": f"the pool has no {LABEL} column: nothing to measure against"}
    return {"labels": LABEL, **flaw_figures(pool, scores),
            "arms": {arm: arm_figures(pool, selections[arm], spec) for arm, spec in arms.items()
                     if spec.get("method") == "alpagasus" and arm in selections}}
