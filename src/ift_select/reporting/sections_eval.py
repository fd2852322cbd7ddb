"""Report sections about evaluation: pairwise judging, categories, judge agreement, costs and times."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.reporting import plots
from ift_select.reporting.render import Block, Figure, Heading, Para, Table

REFERENCE = {"gpt35": "GPT-3.5 (bundled)", "pandalm7b": "PandaLM-7B (bundled)"}


def _interval(value: Any, ci: list[float] | None) -> str:
    if value is None:
        return "–"
    return f"{value:.4g} [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else f"{value:.4g}"


def _judge_rows(summaries: dict[str, dict[str, dict[str, Any]]]) -> pd.DataFrame:
    rows = []
    for pair, by_set in summaries.items():
        for test_set, s in by_set.items():
            ci = s["ws_ci"] or [math.nan, math.nan]
            rows.append({"pair": f"{pair}/{test_set}", "pair_name": pair, "test_set": test_set, **{
                k: s.get(k) for k in ("n", "win", "tie", "lose", "ws", "wr", "qs", "ws_ci", "wr_ci", "qs_ci",
                                      "consistency", "flip_rate", "longer_share", "first_position_rate",
                                      "win_rate", "lc_win_rate", "lc_win_rate_ci", "length_coef", "position_coef",
                                      "mean_len_a", "mean_len_b", "incomplete", "model_a", "model_b")},
                "ws_low": ci[0], "ws_high": ci[1]})
    return pd.DataFrame(rows)


def judging_section(summaries: dict[str, dict[str, dict[str, Any]]], plot_dir: Path,
                    evidence: dict[str, bool] | None = None) -> list[Block]:
    """WS/WR/QS with intervals per pair and test set; a pair whose judge is not qualified (``evidence`` False
    or missing) has its figures marked "not evidence"."""
    if not summaries:
        return [Heading("Pairwise judging"), Para("No judgments were available.")]
    evidence = evidence or {}
    frame = _judge_rows(summaries)
    frame[["pair", "pair_name", "test_set", "ws", "ws_low", "ws_high", "wr", "qs", "n"]].to_csv(
        plot_dir / "ws.csv", index=False)
    frame[["pair", "win", "tie", "lose"]].to_csv(plot_dir / "wtl.csv", index=False)

    def shown(r: Any, key: str) -> str:
        text = _interval(getattr(r, key), getattr(r, f"{key}_ci"))
        return text if evidence.get(r.pair_name) else f"({text}) not evidence"

    table = [[r.pair_name, r.test_set, r.n, r.win, r.tie, r.lose, shown(r, "ws"), shown(r, "wr"), shown(r, "qs"),
              r.flip_rate, r.longer_share, r.first_position_rate, r.incomplete] for r in frame.itertuples()]
    lengths = [[r.pair_name, r.test_set, r.model_a, r.mean_len_a, r.model_b, r.mean_len_b, r.win_rate,
                _interval(r.lc_win_rate, r.lc_win_rate_ci), r.length_coef, r.position_coef]
               for r in frame.itertuples()]
    unqualified = sorted(p for p in frame["pair_name"].unique() if not evidence.get(p))
    blocks: list[Block] = [Heading("Pairwise judging")]
    if unqualified:
        blocks.append(Para(f"Not evidence: the judge of {', '.join(unqualified)} is not qualified (see 'Judge "
                           "qualification'), so these WS, WR and QS are shown for the record only, never as a "
                           "finding about the arms.", warning=True))
    blocks += [
        Table(["pair (a vs b)", "test set", "n", "win", "tie", "lose", "WS [95% CI]", "WR [95% CI]", "QS [95% CI]",
               "flip rate", "longer-answer share", "first-position rate", "incomplete"], table,
              caption="Flip rate: share of items whose verdict changed when the answers swapped places. "
                      "Longer-answer share: of the items won or lost, the share the longer answer won."),
        Figure("ws.png", "Winning score per test set and pair (AlpaGasus Fig. 5)" +
               (" - not evidence: the judge is not qualified" if unqualified else ""),
               plots.ws_bars(frame.assign(pair=frame["pair_name"]))),
        Figure("wtl.png", "Win / tie / lose of the first arm of each pair",
               plots.wtl_bars(frame.assign(label=frame["pair"]))),
        Heading("Answer length and length-controlled win rate", 3),
        Para("Win rate: the first arm's share of judgments (each order counted, ties half). LC win rate: the "
             "same at equal answer length and without position, from a logistic model of each judgment on the "
             "length difference and the position (AlpacaEval 2's length control), with a 95% bootstrap "
             "interval over items. A positive length coefficient means the judge prefers the longer answer."),
        Table(["pair", "test set", "arm a", "mean length a (chars)", "arm b", "mean length b (chars)", "win rate",
               "LC win rate [95% CI]", "length coef", "position coef"], lengths),
    ]
    blocks += categories_section(summaries, plot_dir)
    return blocks


def categories_section(summaries: dict[str, dict[str, dict[str, Any]]], plot_dir: Path) -> list[Block]:
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


def _human_sets(qualify: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in (qualify or {}).get("sets", {}).items() if v.get("kind") == "human"}


def _measured(qualify: dict[str, Any], human: dict[str, dict[str, Any]]) -> tuple[str, list[tuple[str, str, float]],
                                                                                 dict[str, Any]]:
    rows = []
    for name, s in human.items():
        rows += [(f"configured judge ({name})", "all pairs, ties included", s["agreement"]),
                 (f"configured judge ({name})", "non-tie pairs", s["agreement_non_tie"]),
                 (f"longer response wins ({name})", "non-tie pairs", s["baseline_longer"])]
    lead = next(iter(human.values()))
    sets = ", ".join(f"{k} ({v['n']} pairs, {v['path']})" for k, v in human.items())
    text = (f"Measured in this run by the qualify_judge stage: judge {qualify.get('judge')} (decision "
            f"{qualify.get('decision')}) on {sets}, both orders: Cohen's kappa {lead.get('kappa')}, first-position "
            f"rate {lead.get('first_position_rate')}, flip rate {lead.get('flip_rate')}, longer-answer share "
            f"{lead.get('longer_share')}, unreadable pairs {lead.get('unparsed')}, {lead.get('seconds')} s. On "
            "PandaLM's full file GPT-3.5 reached 69.8% and PandaLM-7B 66.8% (ties included).")
    return text, rows, lead


def _from_command(agreement: dict[str, Any]) -> tuple[str, list[tuple[str, str, float]], dict[str, Any]]:
    rows: list[tuple[str, str, float]] = []
    for key, label in (("agreement", "all pairs, ties included"), ("agreement_non_tie", "non-tie pairs")):
        if agreement.get(key) is not None:
            rows.append(("configured judge", label, agreement[key]))
        for ref, name in REFERENCE.items():
            if (agreement.get(ref) or {}).get(key) is not None:
                rows.append((name, label, agreement[ref][key]))
    if agreement.get("agreement_non_tie_prob_avg") is not None:
        rows.append(("configured judge, probabilities averaged", "non-tie pairs",
                     agreement["agreement_non_tie_prob_avg"]))
    if agreement.get("baseline_longer") is not None:
        rows.append(("longer response wins", "non-tie pairs", agreement["baseline_longer"]))
    scope = f"a seeded sample of {agreement['sample']} pairs" if agreement.get("sample") else \
        (f"the first {agreement['limit']} pairs" if agreement.get("limit") else f"{agreement.get('n')} pairs")
    text = (f"Judge {agreement.get('judge')} on {scope} of PandaLM's human-annotated set (ift-select judge "
            f"agreement), both orders: Cohen's kappa {agreement.get('kappa')}, first-position rate "
            f"{agreement.get('first_position_rate')}, unreadable pairs {agreement.get('unparsed')}, "
            f"{agreement.get('seconds')} s.")
    return text, rows, agreement


def agreement_section(agreement: dict[str, Any] | None, judge_name: str,
                      qualify: dict[str, Any] | None = None) -> tuple[list[Block], dict[str, Any]]:
    """Agreement with people: the pipeline's own measurement (human sets of metrics/qualify.json), else a
    file written by ``ift-select judge agreement --out``, else how to measure it."""
    blocks: list[Block] = [Heading("Judge agreement with people")]
    human = _human_sets(qualify)
    if not human and agreement is None:
        constructed = {k: v for k, v in (qualify or {}).get("sets", {}).items() if v.get("kind") == "constructed"}
        measured = "; ".join(f"on the {k} set, whose winners are known by construction, it agreed "
                             f"{v['agreement_non_tie'] or 0:.1%} against {v['baseline_longer'] or 0:.1%} for "
                             "longer-wins: see 'Judge qualification'" for k, v in constructed.items())
        blocks.append(Para(
            f"The configured judge ({judge_name}) has not been measured against people in this run"
            f"{' (' + measured + ')' if measured else ''}: add a human "
            "set to params.yaml (judge.qualify.sets.pandalm: {path: ../shared/data/pandalm170/testset-v1.json, "
            "kind: human}) or run ift-select judge agreement --human ../shared/data/pandalm170/testset-v1.json. "
            "Reference figures on PandaLM's 999 human-annotated pairs: GPT-3.5 69.8%, PandaLM-7B 66.8% (ties "
            "included); 'the longer response wins' 67.0% of the 894 pairs whose majority is not a tie. A judge "
            "that does not beat the length baseline measures length, not quality."))
        return blocks, {}
    text, rows, source = _measured(qualify or {}, human) if human else _from_command(agreement or {})
    rows = [r for r in rows if r[2] is not None]
    blocks += [Para(text), Table(["judge", "pairs", "agreement"], [[a, b, f"{v:.1%}"] for a, b, v in rows]),
               Figure("agreement.png", "Agreement with the human majority", plots.agreement_bars(rows))]
    keys = ("agreement", "agreement_non_tie", "kappa", "baseline_longer", "n")
    return blocks, {k: source.get(k) for k in keys}
