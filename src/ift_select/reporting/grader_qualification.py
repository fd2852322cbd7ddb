"""Report section "Grader qualification": every grader number beside its measured agreement with labels and
beside the "longer output is better" baseline (metrics/qualify_grader.json, metrics/qualify_pairs_*.json)."""

from __future__ import annotations

from typing import Any

from ift_select.reporting.render import Block, Heading, Para, Table


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value:.1%}"


def _flaw_blocks(q: dict[str, Any]) -> list[Block]:
    kinds = sorted(q.get("by_flaw", {}))
    headers = ["scores", "AUC: clean vs flawed"] + [f"AUC vs {k} ({q['by_flaw'][k]['n']})" for k in kinds]
    rows = [[column, auc] + [q["by_flaw"][k]["auc"].get(column) for k in kinds] for column, auc in q["auc"].items()]
    rows.append(["output length (baseline)", q["length_auc"]] + [q["by_flaw"][k]["length_auc"] for k in kinds])
    blocks: list[Block] = [
        Para(f"Against the pool's {q['labels']} labels ({q['rows']} rows, {q['flawed']} flawed): AUC = the chance "
             "that a random clean row scores above a random flawed one (0.5 = no better than a coin; ties count "
             "half; unscored rows rank lowest). A grader that does not beat output length measures length."),
        Table(headers, rows, caption="Measured only: the labels never choose a grader, a threshold or a row.")]
    arms = q.get("arms") or {}
    if arms:
        arm_rows = [[arm, f"{a['column']} >= {a['tau']}", a["kept"], _pct(a["flawed_share"]), _pct(a["pool_flawed_share"]),
                     ", ".join(f"{c} ({d['rows']} rows, {d['flawed_share']:.0%} flawed)"
                               for c, d in a["categories_dropped"].items()) or "none"]
                    for arm, a in arms.items()]
        blocks.append(Table(["arm", "kept when", "rows kept", "flawed among kept", "flawed in pool",
                             "categories dropped whole"], arm_rows,
                            caption="A selection that keeps flawed rows at the pool's rate selects nothing."))
    return blocks


def _pairs_blocks(name: str, m: dict[str, Any]) -> list[Block]:
    metric = m.get("metric", "pairwise_accuracy")
    headers = ["scores", "AUC" if metric == "auc" else "pairwise accuracy"]
    if metric != "auc":
        headers.append(f"better answer not the longer ({m.get('n_not_longer')} pairs)")
    rows = [[c, _pct(f[metric])] + ([_pct(f["pairwise_accuracy_not_longer"])] if metric != "auc" else [])
            for c, f in m.get("columns", {}).items()]
    rows.append(["output length (baseline)", _pct(m.get("length_baseline"))] + ([None] if metric != "auc" else []))
    return [Para(f"{name}: {m.get('file')} ({m.get('n')} {'rows' if metric == 'auc' else 'pairs'}; "
                 f"{m.get('unscored', 0)} rows unscored; grader {m.get('grader')})."), Table(headers, rows)]


def grader_qualification_section(stage_metrics: dict[str, dict[str, Any]]) -> tuple[list[Block], dict[str, Any]]:
    """The section's blocks and a short summary (AUCs, flawed shares) for summary.json."""
    blocks: list[Block] = [Heading("Grader qualification")]
    q = stage_metrics.get("qualify_grader")
    summary: dict[str, Any] = {}
    if q and q.get("labels"):
        blocks += _flaw_blocks(q)
        summary = {"auc": q["auc"], "length_auc": q["length_auc"],
                   "flawed_share": {arm: a["flawed_share"] for arm, a in (q.get("arms") or {}).items()}}
    else:
        blocks.append(Para("The pool has no flaw labels (or stage qualify_grader has not run): the grader's numbers "
                           "are unmeasured here. Measure it on labelled pairs: ift-select grade agreement --pairs "
                           "../shared/data/car_expert_revised_pairs/APE_valid.csv", warning=True))
    for stem in sorted(k for k in stage_metrics if k.startswith("qualify_pairs_")):
        blocks += _pairs_blocks(stem.removeprefix("qualify_pairs_"), stage_metrics[stem])
    return blocks, summary
