"""Report sections about the data: how to read the report, the models, selection sizes, grader scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ift_select.core.params import Params
from ift_select.reporting import plots
from ift_select.selection.arms import describe
from ift_select.reporting.inputs import ReportInputs
from ift_select.reporting.render import Block, Figure, Heading, Para, Table

SMALL_LOCAL = {"smollm2-135m-instruct": "SmolLM2-135M-Instruct", "tiny-random-llama": "a random 2-layer test model",
               "gemma3-270m": "Gemma 3 270M (pretrained, not instruction-tuned)"}


def intro_section(p: Params) -> list[Block]:
    blocks: list[Block] = [Heading("How to read this report"), Para(
        "Each arm is the same base model fine-tuned on a different selection of the pool (AlpaGasus: grader "
        "score >= tau; CaR: ranking + clustering; random: same size as AlpaGasus; full: every row). A judge "
        "compares two arms' answers to every test item twice, swapping their positions. Per item, an arm wins "
        "if it wins both orders or wins one and ties the other, loses in the mirror case, and ties otherwise. "
        "WS = 1 + (win - lose)/n: 1 means even, above 1 favours the first arm of the pair (up to 2); WR = win/n; "
        "QS = (win + tie)/n. Intervals are seeded 95% bootstraps over items: when WS's contains 1, the data do "
        "not separate the arms. The flip rate is the share of items whose verdict changed when the answers "
        "swapped places; a high value means the judge follows positions more than answers. The LC win rate is "
        "the first arm's win rate at equal answer length (0.5 = even): compare it with the raw win rate to see "
        "how much of a win is length. Figures from a judge that did not qualify (see 'Judge qualification') "
        "are marked not evidence. 'incomplete' items (an order unreadable or failed) are left out of n and "
        "counted.")]
    why = {"judge": "as a pairwise judge SmolLM2-135M-Instruct mostly follows positions and agrees with people "
                    "at chance level (see 'Judge agreement')",
           "grader": "its 0-5 ratings barely separate clean rows from flawed ones (see 'Grader scores')"}
    for role, section in (("judge", p.judge), ("grader", p.score)):
        name = SMALL_LOCAL.get(section.model)
        if section.backend == "local" and name:
            blocks.append(Para(
                f"The {role} is the local model {name} ({section.model}). Its verdicts are not meaningful: "
                f"{why[role]}. Read this run as a working pipeline on the embedded sample, not as evidence about "
                f"data selection; use an API model ({role.replace('grader', 'score')}.backend: openai) for "
                "results.", warning=True))
    return blocks


def models_section(inputs: ReportInputs, scores: pd.DataFrame | None, judgments: dict[str, pd.DataFrame],
                    stage_metrics: dict[str, dict[str, Any]]) -> list[Block]:
    p = inputs.params
    scorer = str(scores["scorer"].iloc[0]) if scores is not None and "scorer" in scores and len(scores) else None
    judges = sorted({str(j) for df in judgments.values() if "judge" in df for j in df["judge"].unique()})
    base = stage_metrics.get("base_model", {})
    rows = [["grader", scorer or f"{p.score.backend}:{p.score.model}", p.score.prompt, p.score.dimension],
            ["judge", ", ".join(judges) or f"{p.judge.backend}:{p.judge.model}", p.judge.prompt, "both orders"],
            ["base model", f"{base.get('spec', p.base_model)}" + (f" (source {base['source_hash']})"
                                                                   if base.get("source_hash") else ""), "–", "–"],
            ["embeddings (CaR)", p.embed.model, "–", f"CaR scorer: {p.car.scorer}"]]
    return [Heading("Models and prompts"),
            Para("Every number below was produced by these models; 'prompt:<hash>' is the first 12 hex digits of "
                 "the sha256 of the template file's text, as recorded in the scores and judgments files."),
            Table(["role", "model (backend:model|prompt:hash)", "prompt file", "notes"], rows)]


def selection_section(inputs: ReportInputs, pool: pd.DataFrame | None, selections: dict[str, pd.DataFrame],
                      plot_dir: Path) -> tuple[list[Block], dict[str, int]]:
    sizes = {arm: len(df) for arm, df in selections.items()}
    total = len(pool) if pool is not None else None
    rows = [[arm, n, f"{n / total:.1%}" if total else "–", describe(inputs.arms[arm]) if arm in inputs.arms else ""]
            for arm, n in sizes.items()]
    pd.DataFrame({"arm": list(sizes), "selected": list(sizes.values())}).to_csv(plot_dir / "selection_sizes.csv",
                                                                               index=False)
    return [Heading("Selection sizes"), Table(["arm", "rows", "share of pool", "rule"], rows,
                                               caption=f"pool: {total if total is not None else '?'} rows")], sizes


def histogram_section(scores: pd.DataFrame, pool: pd.DataFrame | None, kept_ids: set[str] | None,
                      tau: float, plot_dir: Path) -> tuple[list[Block], dict[str, Any]]:
    ok = scores[scores["status"] == "ok"].copy()
    ok["id"] = ok["id"].astype(str)
    flaws = pool.assign(id=pool["id"].astype(str)).set_index("id")["_flaw"].fillna("").astype(str) \
        if pool is not None and "_flaw" in pool else None
    edges = np.linspace(0, 5, 21)
    hist = pd.DataFrame({"score": edges[:-1], "width": np.diff(edges)})
    kept = ok["id"].isin(kept_ids) if kept_ids is not None else ok["score"] >= tau
    if flaws is not None:
        flawed = ok["id"].map(flaws).fillna("") != ""
        for name, mask in (("clean", ~flawed), ("flawed", flawed)):
            hist[name] = np.histogram(ok.loc[mask, "score"], bins=edges)[0]
    else:
        hist["rows"] = np.histogram(ok["score"], bins=edges)[0]
    hist.assign(rows=np.histogram(ok["score"], bins=edges)[0],
                kept=np.histogram(ok.loc[kept, "score"], bins=edges)[0]).to_csv(plot_dir / "score_hist.csv",
                                                                                index=False)
    blocks: list[Block] = [Heading("Grader scores"), Figure(
        "score_hist.png", f"Grader score histogram (AlpaGasus Fig. 4), tau = {tau:g}",
        plots.score_histogram(hist, tau, "Grader scores of the pool" + (" by flaw" if flaws is not None else "")))]
    summary = {"scored": int(len(ok)), "unparsed": int((scores["status"] != "ok").sum()),
               "mean": round(float(ok["score"].mean()), 4) if len(ok) else None}
    if flaws is not None:
        kind = ok["id"].map(flaws).fillna("").replace("", "(clean)")
        table = pd.DataFrame({"flaw": kind, "kept": kept}).groupby("flaw")["kept"].agg(["size", "sum"])
        rows = [[f, int(r["size"]), int(r["sum"]), int(r["size"] - r["sum"]), f"{r['sum'] / r['size']:.0%}"]
                for f, r in table.iterrows()]
        blocks.append(Table(["flaw (sample data's _flaw column)", "rows", "kept", "dropped", "kept share"], rows,
                            caption="What the grader kept: a good grader keeps clean rows and drops flawed ones."))
    return blocks, summary
