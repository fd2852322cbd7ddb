"""The report: reports/report.md + report.html (self-contained), figures, plot data for DVC, a metrics summary.

    from ift_select.reporting import ReportInputs, build_report
    build_report(ReportInputs(params=load_params(), scores=..., pool=..., selections={...}, judgments={...},
                              metrics={...}, agreement=None), Path("reports"))

Writes, under ``out_dir``: report.md, report.html, figures/*.png (score_hist, selection_*, ws, wtl,
categories_<pair>, agreement) and plots/*.csv (ws, wtl, score_hist, selection_sizes, selection_balance,
categories) for ``dvc plots``. Returns the
metrics summary (numbers only, for reports/summary.json and ``dvc metrics show``). A missing input file is
named in the report and skipped, so a partial pipeline still gets a report.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ift_select import report_plots as plots
from ift_select.config import Params
from ift_select.io import write_text, write_with
from ift_select.metrics import summarize_pairs
from ift_select.report_render import Block, Figure, Heading, Para, Table, to_html, to_markdown
from ift_select.report_selection import selection_analytics

TITLE = "ift-select report: instruction-tuning data selection"
SMALL_LOCAL = {"smollm2-135m-instruct": "SmolLM2-135M-Instruct", "tiny-random-llama": "a random 2-layer test model",
               "gemma3-270m": "Gemma 3 270M (pretrained, not instruction-tuned)"}
REFERENCE = {"gpt35": "GPT-3.5 (bundled)", "pandalm7b": "PandaLM-7B (bundled)"}
ANALYTICS_FILE = "selection_analytics.json"
COST_KEYS = ("rows", "requests", "cache_hits", "tokens_in", "tokens_out", "cost_usd", "seconds")


@dataclass
class ReportInputs:
    """Paths the report reads (each optional). ``selections``: arm -> selection parquet; ``judgments``: pair
    name -> judgments parquet; ``metrics``: stage name -> metrics JSON (metrics/*.json); ``agreement``: the JSON
    written by ``ift-select judge agreement --out``."""

    params: Params
    scores: Path | None = None
    pool: Path | None = None
    selections: dict[str, Path] = field(default_factory=dict)
    judgments: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Path] = field(default_factory=dict)
    agreement: Path | None = None
    embeddings: Path | None = None  # the embed stage's directory: cluster coverage per arm


def _read(path: Path | None, missing: list[str]) -> pd.DataFrame | None:
    if path is None:
        return None
    if not Path(path).exists():
        missing.append(str(path))
        return None
    return pd.read_parquet(path)


def _read_json(path: Path | None, missing: list[str]) -> dict[str, Any] | None:
    if path is None:
        return None
    if not Path(path).exists():
        missing.append(str(path))
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _intro(p: Params) -> list[Block]:
    blocks: list[Block] = [Heading("How to read this report"), Para(
        "Each arm is the same base model fine-tuned on a different selection of the pool (AlpaGasus: grader "
        "score >= tau; CaR: ranking + clustering; random: same size as AlpaGasus; full: every row). A judge "
        "compares two arms' answers to every test item twice, swapping their positions. Per item, an arm wins "
        "if it wins both orders or wins one and ties the other, loses in the mirror case, and ties otherwise. "
        "WS = 1 + (win - lose)/n: 1 means even, above 1 favours the first arm of the pair (up to 2); WR = win/n; "
        "QS = (win + tie)/n. The interval is a seeded 95% bootstrap over items: when it contains 1, the data do "
        "not separate the arms. Consistency is the share of items whose two orders agree; a low value means the "
        "judge follows positions more than answers. 'LC pref' is the judge's preference for the first arm at "
        "equal answer length (0.5 = even): compare it with 'pref' to see how much of a win is length. "
        "'incomplete' items (an order unreadable or failed) are left out of n and counted.")]
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


def _models_section(inputs: ReportInputs, scores: pd.DataFrame | None, judgments: dict[str, pd.DataFrame],
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


def _selection(inputs: ReportInputs, pool: pd.DataFrame | None, selections: dict[str, pd.DataFrame],
               plot_dir: Path) -> tuple[list[Block], dict[str, int]]:
    sizes = {arm: len(df) for arm, df in selections.items()}
    total = len(pool) if pool is not None else None
    p = inputs.params
    rule = {"alpagasus": f"score >= tau = {p.tau:g}", "car": f"n1 = {p.n1}, n2 = {p.n2}",
            "random": f"size of {p.random.match}, seed {p.seed}", "full": "every row"}
    rows = [[arm, n, f"{n / total:.1%}" if total else "–", rule.get(arm, "")] for arm, n in sizes.items()]
    pd.DataFrame({"arm": list(sizes), "selected": list(sizes.values())}).to_csv(plot_dir / "selection_sizes.csv",
                                                                               index=False)
    return [Heading("Selection sizes"), Table(["arm", "rows", "share of pool", "rule"], rows,
                                               caption=f"pool: {total if total is not None else '?'} rows")], sizes


def _histogram(scores: pd.DataFrame, pool: pd.DataFrame | None, kept_ids: set[str] | None,
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


def _judge_rows(summaries: dict[str, dict[str, dict[str, Any]]]) -> pd.DataFrame:
    rows = []
    for pair, by_set in summaries.items():
        for test_set, s in by_set.items():
            ci = s["ws_ci"] or [math.nan, math.nan]
            rows.append({"pair": f"{pair}/{test_set}", "pair_name": pair, "test_set": test_set, **{
                k: s[k] for k in ("n", "win", "tie", "lose", "ws", "wr", "qs", "consistency", "first_position_rate",
                                  "pref", "lc_pref", "mean_len_a", "mean_len_b", "incomplete", "model_a", "model_b")},
                "ws_low": ci[0], "ws_high": ci[1]})
    return pd.DataFrame(rows)


def _judging(summaries: dict[str, dict[str, dict[str, Any]]], plot_dir: Path) -> list[Block]:
    if not summaries:
        return [Heading("Pairwise judging"), Para("No judgments were available.")]
    frame = _judge_rows(summaries)
    frame[["pair", "pair_name", "test_set", "ws", "ws_low", "ws_high", "wr", "qs", "n"]].to_csv(
        plot_dir / "ws.csv", index=False)
    frame[["pair", "win", "tie", "lose"]].to_csv(plot_dir / "wtl.csv", index=False)
    table = [[r.pair_name, r.test_set, r.n, r.win, r.tie, r.lose,
              f"{r.ws} [{r.ws_low}, {r.ws_high}]", r.wr, r.qs, r.consistency, r.first_position_rate, r.incomplete]
             for r in frame.itertuples()]
    lengths = [[r.pair_name, r.test_set, r.model_a, r.mean_len_a, r.model_b, r.mean_len_b, r.pref, r.lc_pref]
               for r in frame.itertuples()]
    blocks: list[Block] = [
        Heading("Pairwise judging"),
        Table(["pair (a vs b)", "test set", "n", "win", "tie", "lose", "WS [95% CI]", "WR", "QS", "consistency",
               "first-position rate", "incomplete"], table),
        Figure("ws.png", "Winning score per test set and pair (AlpaGasus Fig. 5)",
               plots.ws_bars(frame.assign(pair=frame["pair_name"]))),
        Figure("wtl.png", "Win / tie / lose of the first arm of each pair",
               plots.wtl_bars(frame.assign(label=frame["pair"]))),
        Heading("Answer length and length-controlled preference", 3),
        Table(["pair", "test set", "arm a", "mean length a (chars)", "arm b", "mean length b (chars)", "pref",
               "LC pref"], lengths),
    ]
    blocks += _categories(summaries, plot_dir)
    return blocks


def _categories(summaries: dict[str, dict[str, dict[str, Any]]], plot_dir: Path) -> list[Block]:
    rows = [{"pair": pair, "test_set": ts, "category": cat, **r}
            for pair, by_set in summaries.items() for ts, s in by_set.items()
            for cat, r in s.get("categories", {}).items()]
    frame = pd.DataFrame(rows, columns=["pair", "test_set", "category", "win", "tie", "lose", "n", "ws", "wr", "qs"])
    frame.to_csv(plot_dir / "categories.csv", index=False)
    if frame.empty:
        return []
    blocks: list[Block] = [Heading("Per category", 3)]
    for pair, group in frame.groupby("pair", sort=True):
        label = group["category"] if group["test_set"].nunique() == 1 else group["test_set"] + "/" + group["category"]
        blocks.append(Figure(f"categories_{pair}.png", f"Win / tie / lose per category: {pair}",
                             plots.wtl_bars(group.assign(label=label.to_numpy()), title=f"{pair} by category")))
    return blocks


def _agreement(agreement: dict[str, Any] | None, judge_name: str) -> tuple[list[Block], dict[str, Any]]:
    blocks: list[Block] = [Heading("Judge agreement with people")]
    if agreement is None:
        blocks.append(Para(
            f"The configured judge ({judge_name}) has not been measured against people in this run. Measure it "
            "with: ift-select judge agreement --human ../shared/data/pandalm170/testset-v1.json. Reference figures "
            "on PandaLM's 999 human-annotated pairs: GPT-3.5 69.8%, PandaLM-7B 66.8% (ties included); 'the longer "
            "response wins' 67.0% of the 894 pairs whose majority is not a tie. A judge that does not beat the "
            "length baseline measures length, not quality."))
        return blocks, {}
    rows: list[tuple[str, str, float]] = []
    for key, label in (("agreement", "all pairs, ties included"), ("agreement_non_tie", "non-tie pairs")):
        if agreement.get(key) is not None:
            rows.append(("configured judge", label, agreement[key]))
        for ref, name in REFERENCE.items():
            if (agreement.get(ref) or {}).get(key) is not None:
                rows.append((name, label, agreement[ref][key]))
    if agreement.get("agreement_non_tie_prob_avg") is not None:
        rows.append(("configured judge, probabilities averaged", "non-tie pairs", agreement["agreement_non_tie_prob_avg"]))
    if agreement.get("baseline_longer") is not None:
        rows.append(("longer response wins", "non-tie pairs", agreement["baseline_longer"]))
    scope = f"a seeded sample of {agreement['sample']} pairs" if agreement.get("sample") else \
        (f"the first {agreement['limit']} pairs" if agreement.get("limit") else f"{agreement.get('n')} pairs")
    blocks += [Para(f"Judge {agreement.get('judge')} on {scope} of PandaLM's human-annotated set, both orders "
                    f"combined by the paper's rule: Cohen's kappa {agreement.get('kappa')}, first-position rate "
                    f"{agreement.get('first_position_rate')}, unreadable pairs {agreement.get('unparsed')}, "
                    f"{agreement.get('seconds')} s."),
               Table(["judge", "pairs", "agreement"], [[a, b, f"{v:.1%}"] for a, b, v in rows]),
               Figure("agreement.png", "Agreement with the human majority", plots.agreement_bars(rows))]
    keys = ("agreement", "agreement_non_tie", "kappa", "baseline_longer", "n")
    return blocks, {k: agreement.get(k) for k in keys}


def _costs(stage_metrics: dict[str, dict[str, Any]]) -> list[Block]:
    rows, totals = [], {"cost_usd": 0.0, "seconds": 0.0}
    for name, m in sorted(stage_metrics.items()):
        if not any(k in m for k in COST_KEYS):
            continue
        rows.append([name] + [m.get(k) for k in COST_KEYS])
        for k in totals:
            totals[k] += float(m.get(k) or 0)
    rows.append(["total", None, None, None, None, None, round(totals["cost_usd"], 6), round(totals["seconds"], 1)])
    return [Heading("Costs and times"), Table(["stage"] + list(COST_KEYS), rows,
                                              caption="From metrics/*.json; local models cost nothing.")]


def build_report(inputs: ReportInputs, out_dir: Path) -> dict[str, Any]:
    """Write the report (see the module docstring) and return its metrics summary."""
    out_dir = Path(out_dir)
    fig_dir, plot_dir = out_dir / "figures", out_dir / "plots"
    fig_dir.mkdir(parents=True, exist_ok=True)
    plot_dir.mkdir(parents=True, exist_ok=True)
    p, missing = inputs.params, []
    pool, scores = _read(inputs.pool, missing), _read(inputs.scores, missing)
    judgments = {k: df for k, path in inputs.judgments.items() if (df := _read(path, missing)) is not None}
    stage_metrics = {k: m for k, path in inputs.metrics.items() if (m := _read_json(path, missing)) is not None}
    agreement = _read_json(inputs.agreement, missing)

    blocks = _intro(p) + _models_section(inputs, scores, judgments, stage_metrics)
    selections = {arm: df for arm, path in inputs.selections.items() if (df := _read(path, missing)) is not None}
    sel_blocks, sizes = _selection(inputs, pool, selections, plot_dir)
    blocks += sel_blocks
    score_summary: dict[str, Any] = {}
    if scores is not None:
        alpagasus = selections.get("alpagasus")
        kept = set(alpagasus["id"].astype(str)) if alpagasus is not None else None
        hist_blocks, score_summary = _histogram(scores, pool, kept, p.tau, plot_dir)
        blocks += hist_blocks
    analytics: dict[str, Any] = {}
    if pool is not None and selections:
        analytics_blocks, analytics = selection_analytics(pool, scores, selections, inputs.embeddings, p, plot_dir,
                                                          missing)
        blocks += analytics_blocks
        # Beside summary.json, not in it: ~40 numbers per run would crowd the params out of `dvc exp show`.
        write_text(out_dir / ANALYTICS_FILE, json.dumps(analytics, indent=2, sort_keys=True) + "\n")
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    for name, frame in judgments.items():
        for pair_summary in summarize_pairs(frame, bootstrap=p.report.bootstrap, ci=p.report.ci,
                                            seed=p.seed).values():
            summaries[name] = pair_summary
    blocks += _judging(summaries, plot_dir)
    agree_blocks, agree_summary = _agreement(agreement, f"{p.judge.backend}:{p.judge.model}")
    blocks += agree_blocks + _costs(stage_metrics)
    if missing:
        blocks += [Heading("Missing inputs"), Para("Not found, left out: " + ", ".join(missing))]

    figures = [b for b in blocks if isinstance(b, Figure)]
    for fig in figures:
        write_with(fig_dir / fig.name, lambda tmp, png=fig.png: tmp.write_bytes(png))
    write_text(out_dir / "report.md", to_markdown(TITLE, blocks, "figures"))
    write_text(out_dir / "report.html", to_html(TITLE, blocks))
    judge_summary = {pair: {ts: {k: s[k] for k in ("n", "win", "tie", "lose", "ws", "wr", "qs", "consistency",
                                                   "lc_pref", "incomplete")}
                            | {"ws_ci_low": (s["ws_ci"] or [None])[0], "ws_ci_high": (s["ws_ci"] or [None, None])[1]}
                            for ts, s in by_set.items()} for pair, by_set in summaries.items()}
    return {"pool_rows": len(pool) if pool is not None else None, "selection": sizes,
            "score": score_summary,
            "judge": judge_summary, "agreement": agree_summary, "figures": len(figures), "missing_inputs": len(missing)}
