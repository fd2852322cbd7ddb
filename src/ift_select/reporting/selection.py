"""The report's "Selection analytics" section: per arm, size, cluster coverage, grader scores, keyword balance.

Writes plots/selection_balance.csv (``dvc plots``) and returns blocks plus a summary for reports/summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ift_select.reporting import plots
from ift_select.selection import analytics as sa
from ift_select.selection.car import pool_clusters
from ift_select.core.params import Params
from ift_select.reporting.render import Block, Figure, Heading, Para, Table


def _clusters(pool: pd.DataFrame, embeddings_dir: Path | None, params: Params,
              missing: list[str]) -> tuple[pd.Series, dict[str, Any]] | None:
    """CaR's clusters of the pool (same params and seed as select@car), or None without embeddings."""
    if embeddings_dir is None:
        return None
    vectors, ids_file = Path(embeddings_dir) / "pool.npy", Path(embeddings_dir) / "ids.json"
    if not vectors.exists() or not ids_file.exists():
        missing.append(str(vectors if not vectors.exists() else ids_file))
        return None
    pool_ids = pool["id"].astype(str).tolist()
    labels, info = pool_clusters(pool_ids, np.load(vectors), json.loads(ids_file.read_text()), params.car, params.seed)
    return pd.Series(labels, index=pool_ids), info


def _share(value: float) -> str:
    return f"{value:.0%}"


def _balance_blocks(table: pd.DataFrame, arms: list[str], kind: str, figure: str) -> list[Block]:
    headers = [kind, "pool rows"] + [f"{arm} kept" for arm in arms]
    rows = [[r["group"], int(r["pool"])] + [f"{int(r[arm])} ({_share(r[f'{arm} share'])})" for arm in arms]
            for _, r in table.iterrows()]
    return [Table(headers, rows, caption=f"Rows of each {kind} each arm kept (share of the group's pool rows). "
                                         "A share well under the arm's 'all' row means the arm filtered that "
                                         "group harder than the rest."),
            Figure(figure, f"Share of each {kind} kept per arm (dashed: the arm's overall share)",
                   plots.balance_bars(table, arms, f"Kept share by {kind}"))]


def selection_analytics(pool: pd.DataFrame, scores: pd.DataFrame | None, selections: dict[str, pd.DataFrame],
                        embeddings_dir: Path | None, params: Params, plot_dir: Path,
                        missing: list[str], tau: float) -> tuple[list[Block], dict[str, Any]]:
    """Blocks and summary of the section (see the module docstring); arms are compared on the same pool."""
    chosen = {arm: set(df["id"].astype(str)) for arm, df in selections.items()}
    arms = [arm for arm in chosen if len(chosen[arm]) < len(pool)] or list(chosen)  # `full` keeps 100% of all
    summary: dict[str, Any] = {arm: {"size": len(ids)} for arm, ids in chosen.items()}
    blocks: list[Block] = [Heading("Selection analytics"), Para(
        "What each arm kept, measured on the same pool. Cluster coverage counts CaR's clusters of the pool "
        "(PCA + KMeans over the embeddings, the car params and seed) that hold at least one selected row; a "
        "selection that keeps few clusters has lost diversity. Keyword groups are AlpaGasus' check that a filter "
        "does not drop one kind of task (it found coding rows filtered at 88% against 82% overall).")]

    clusters = _clusters(pool, embeddings_dir, params, missing)
    if clusters is not None:
        labels, info = clusters
        covered = sa.coverage(labels, chosen)
        k = info["k"]
        rows = [[arm, len(chosen[arm]), f"{covered[arm]} / {k}", _share(covered[arm] / k)] for arm in chosen]
        blocks.append(Table(["arm", "rows", "clusters covered", "coverage"], rows,
                            caption=f"k = {k} clusters over {info['pca_components']} PCA components "
                                    f"({info['pca_variance_retained']:.1%} of the variance)."))
        for arm in chosen:
            summary[arm]["clusters_covered"] = covered[arm]

    if scores is not None:
        dists = {arm: sa.score_distribution(scores, ids) for arm, ids in chosen.items()}
        blocks.append(Figure("selection_scores.png", "Grader scores of each arm's rows",
                             plots.arm_score_histograms(dists, tau)))
        for arm, values in dists.items():
            summary[arm]["mean_score"] = round(float(values.mean()), 4) if len(values) else None

    groups = sa.keyword_groups(pool)
    table = sa.balance(groups, chosen, sa.GROUP_ORDER)
    pd.DataFrame([{"label": f"{arm}/{r['group']}", "arm": arm, "group": r["group"], "pool": int(r["pool"]),
                   "kept": int(r[arm]), "share": float(r[f"{arm} share"])} for arm in chosen
                  for _, r in table.iterrows()]).to_csv(plot_dir / "selection_balance.csv", index=False)
    blocks += _balance_blocks(table, arms, "keyword group", "selection_keywords.png")
    for arm in chosen:
        summary[arm]["kept_share"] = {str(g): float(s) for g, s in zip(table["group"], table[f"{arm} share"])}
    if "category" in pool and pool["category"].notna().any():
        categories = pd.Series(pool["category"].fillna("(none)").astype(str).to_numpy(), index=groups.index)
        blocks += _balance_blocks(sa.balance(categories, chosen), arms, "category (the pool's own column)",
                                  "selection_categories.png")
    return blocks, summary
