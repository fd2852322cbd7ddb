"""Report sections about evaluation: pairwise judging, categories, judge agreement, costs and times."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.reporting import plots
from ift_select.reporting.render import Block, Figure, Heading, Para, Table

REFERENCE = {"gpt35": "GPT-3.5 (bundled)", "pandalm7b": "PandaLM-7B (bundled)"}


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


def judging_section(summaries: dict[str, dict[str, dict[str, Any]]], plot_dir: Path) -> list[Block]:
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


def agreement_section(agreement: dict[str, Any] | None, judge_name: str) -> tuple[list[Block], dict[str, Any]]:
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
