"""The report: reports/report.md + report.html (self-contained), figures, plot data for DVC, a metrics summary.

    from ift_select.reporting.report import ReportInputs, build_report
    build_report(ReportInputs(params=load_params(), scores=..., pool=..., selections={...}, judgments={...},
                              metrics={...}, qualify=Path("metrics/qualify.json")), Path("reports"))

Writes, under ``out_dir``: report.md, report.html, figures/*.png (score_hist, selection_*, ws, wtl,
categories_<pair>, agreement) and plots/*.csv (ws, wtl, score_hist, selection_sizes, selection_balance,
categories) for ``dvc plots``. Returns the
metrics summary (numbers only, for reports/summary.json and ``dvc metrics show``). A missing input file is
named in the report and skipped, so a partial pipeline still gets a report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ift_select.core.io import write_text, write_with
from ift_select.evaluation.metrics import summarize_pairs
from ift_select.reporting.inputs import ReportInputs, read_frame, read_json
from ift_select.reporting.render import Figure, Heading, Para, to_html, to_markdown
from ift_select.reporting.sections_compare import experiments_section
from ift_select.reporting.sections_data import histogram_section, intro_section, models_section, selection_section
from ift_select.reporting.costs import costs_section
from ift_select.reporting.grader_qualification import grader_qualification_section
from ift_select.reporting.sections_eval import agreement_section, judging_section
from ift_select.reporting.sections_qualify import qualification_section
from ift_select.reporting.selection import selection_analytics

TITLE = "ift-select report: instruction-tuning data selection"
ANALYTICS_FILE = "selection_analytics.json"


def threshold_arm(arms: dict[str, dict[str, Any]], default_tau: float) -> tuple[str | None, float]:
    """The AlpaGasus arm whose kept rows the score histogram shows (the one named alpagasus, else the first)."""
    candidates = [name for name, spec in arms.items() if spec.get("method") == "alpagasus"]
    if not candidates:
        return None, default_tau
    arm = "alpagasus" if "alpagasus" in candidates else candidates[0]
    return arm, float(arms[arm]["tau"])


def build_report(inputs: ReportInputs, out_dir: Path) -> dict[str, Any]:
    """Write the report (see the module docstring) and return its metrics summary."""
    out_dir = Path(out_dir)
    fig_dir, plot_dir = out_dir / "figures", out_dir / "plots"
    fig_dir.mkdir(parents=True, exist_ok=True)
    plot_dir.mkdir(parents=True, exist_ok=True)
    p, missing = inputs.params, []
    pool, scores = read_frame(inputs.pool, missing), read_frame(inputs.scores, missing)
    judgments = {k: df for k, path in inputs.judgments.items() if (df := read_frame(path, missing)) is not None}
    stage_metrics = {k: m for k, path in inputs.metrics.items() if (m := read_json(path, missing)) is not None}
    agreement = read_json(inputs.agreement, missing)
    qualify = read_json(inputs.qualify, missing)

    qualify_blocks, qualify_summary, judge_status = qualification_section(qualify)
    blocks = intro_section(p) + qualify_blocks + models_section(inputs, scores, judgments, stage_metrics)
    selections = {arm: df for arm, path in inputs.selections.items() if (df := read_frame(path, missing)) is not None}
    sel_blocks, sizes = selection_section(inputs, pool, selections, plot_dir)
    blocks += sel_blocks
    score_summary: dict[str, Any] = {}
    arm, tau = threshold_arm(inputs.arms, p.tau)
    if scores is not None:
        kept = set(selections[arm]["id"].astype(str)) if arm in selections else None
        hist_blocks, score_summary = histogram_section(scores, pool, kept, tau, plot_dir)
        blocks += hist_blocks
    grader_blocks, grader_summary = grader_qualification_section(stage_metrics)
    blocks += grader_blocks
    analytics: dict[str, Any] = {}
    if pool is not None and selections:
        analytics_blocks, analytics = selection_analytics(pool, scores, selections, inputs.embeddings, p, plot_dir,
                                                          missing, tau)
        blocks += analytics_blocks
        # Beside summary.json, not in it: ~40 numbers per run would crowd the params out of `dvc exp show`.
        write_text(out_dir / ANALYTICS_FILE, json.dumps(analytics, indent=2, sort_keys=True) + "\n")
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    for name, frame in judgments.items():
        for pair_summary in summarize_pairs(frame, bootstrap=p.report.bootstrap, ci=p.report.ci,
                                            seed=p.seed).values():
            summaries[name] = pair_summary
    blocks += judging_section(summaries, plot_dir, {k: judge_status.evidence(df) for k, df in judgments.items()})
    blocks += experiments_section(p, plot_dir)
    agree_blocks, agree_summary = agreement_section(agreement, f"{p.judge.backend}:{p.judge.model}", qualify)
    blocks += agree_blocks + costs_section(stage_metrics)
    if missing:
        blocks += [Heading("Missing inputs"), Para("Not found, left out: " + ", ".join(missing))]

    figures = [b for b in blocks if isinstance(b, Figure)]
    for fig in figures:
        write_with(fig_dir / fig.name, lambda tmp, png=fig.png: tmp.write_bytes(png))
    write_text(out_dir / "report.md", to_markdown(TITLE, blocks, "figures"))
    write_text(out_dir / "report.html", to_html(TITLE, blocks))
    # The figures `dvc exp show` compares; flip rate, longer share, consistency: metrics/judge_<pair>.json
    judge_summary = {pair: {ts: {k: s[k] for k in ("n", "win", "tie", "lose", "ws", "wr", "qs", "lc_win_rate")}
                            | {"ws_ci_low": (s["ws_ci"] or [None])[0], "ws_ci_high": (s["ws_ci"] or [None, None])[1]}
                            for ts, s in by_set.items()} for pair, by_set in summaries.items()}
    return {"pool_rows": len(pool) if pool is not None else None, "selection": sizes,
            "score": score_summary, "grader_qualification": grader_summary,
            "judge": judge_summary, "qualify": qualify_summary, "agreement": agree_summary, "figures": len(figures),
            "missing_inputs": len(missing)}
