"""The report's verdict on the judge (metrics/qualify.json), which decides whether WS/WR/QS are evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ift_select.reporting.render import Block, Heading, Para, Table

SET_FIGURES = ("n", "agreement", "agreement_non_tie", "baseline_longer", "kappa", "first_position_rate",
               "flip_rate", "longer_share", "seconds_per_pair")


@dataclass(frozen=True)
class JudgeStatus:
    """Whether a pair's figures are evidence: the judge that made them was measured and beat longer-wins."""

    measured: bool
    qualified: bool
    judge: str | None = None  # backend|prompt:sha of the qualified judge
    decision: str | None = None

    def evidence(self, judgments: pd.DataFrame) -> bool:
        """True when ``judgments`` come from the qualified judge: same backend and decision (a vs-reference
        pair uses judge.reference_prompt, so only its backend is compared), and the same prompt otherwise."""
        if not self.qualified or self.judge is None or "judge" not in judgments or judgments.empty:
            return False
        made_by = str(judgments["judge"].iloc[0])
        decision = str(judgments["decision"].iloc[0]) if "decision" in judgments else "two_order"
        reference = "model_b" in judgments and str(judgments["model_b"].iloc[0]) == "reference"
        same = made_by.split("|")[0] == self.judge.split("|")[0] if reference else made_by == self.judge
        return same and decision == self.decision


NOT_MEASURED = JudgeStatus(measured=False, qualified=False)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value:.1%}"


def qualification_section(qualify: dict[str, Any] | None) -> tuple[list[Block], dict[str, Any], JudgeStatus]:
    """The first section after the introduction: is the judge qualified, with its figures beside longer-wins."""
    blocks: list[Block] = [Heading("Judge qualification")]
    if qualify is None:
        blocks.append(Para("The judge was not qualified in this run (metrics/qualify.json is missing: run the "
                           "qualify_judge stage). Every WS, WR and QS below is therefore not evidence.", warning=True))
        return blocks, {"qualified": None}, NOT_MEASURED
    status = JudgeStatus(True, bool(qualify["qualified"]), qualify.get("judge"), qualify.get("decision"))
    sets = qualify.get("sets", {})
    deciding = qualify.get("deciding_sets", [])
    lead = sets[deciding[0]] if deciding else {}
    where = ", ".join(f"{name} ({sets[name]['kind']}, {sets[name]['n']} pairs)" for name in deciding) or "no set"
    figures = (f"agreement {_pct(lead.get('agreement_non_tie'))} on the non-tie pairs against "
               f"{_pct(lead.get('baseline_longer'))} for 'the longer answer wins' (difference, 95% bootstrap "
               f"interval: {lead.get('beats_longer_ci')})")
    name = f"{qualify.get('judge')} (decision: {qualify.get('decision')})"
    if status.qualified:
        blocks.append(Para(f"Qualified. The judge {name} beats 'the longer answer wins' on {where}: {figures}. "
                           "Its win/tie/lose figures below are evidence, within their intervals."))
    else:
        blocks.append(Para(f"Not qualified. The judge {name} does not beat 'the longer answer wins' on {where}: "
                           f"{figures}. Its WS, WR and QS below are shown as not evidence: they say more about "
                           "answer length and position than about the arms.", warning=True))
    rows = [[set_name, s["kind"], *[s.get(k) if k in ("n", "kappa", "seconds_per_pair") else _pct(s.get(k))
                                    for k in SET_FIGURES], "yes" if s.get("beats_longer") else "no"]
            for set_name, s in sets.items()]
    blocks.append(Table(["set", "kind", "pairs", "agreement (ties included)", "agreement (non-tie)",
                         "longer wins (non-tie)", "kappa", "first-position rate", "flip rate", "longer-answer share",
                         "s per pair", "beats longer wins"], rows,
                        caption="Both orders per pair. Flip rate: share of pairs whose verdict changed when the "
                                "answers swapped places; longer-answer share: of the judge's decided pairs, the "
                                "share it gave to the longer answer."))
    for set_name, s in sets.items():
        if s.get("by_flaw"):
            blocks.append(Table(["flaw of the losing answer", "pairs", "judge agreement", "longer wins"],
                                [[f, r["n"], _pct(r["agreement"]), _pct(r["baseline_longer"])]
                                 for f, r in s["by_flaw"].items()],
                                caption=f"{set_name}: the clean answer should win every pair"))
    summary = {"qualified": status.qualified, "agreement_non_tie": lead.get("agreement_non_tie"),
               "baseline_longer": lead.get("baseline_longer"), "kappa": lead.get("kappa"),
               "flip_rate": lead.get("flip_rate")}
    return blocks, summary, status
