"""How well a judge agrees with people: PandaLM's 999 human-annotated response pairs (or any file in its format).

``testset-v1.json`` (../shared/data/pandalm170) holds 999 pairs with three annotators each (0 tie,
1 = response1 better, 2 = response2 better); the label is the 2-of-3 majority (every item has one; see
``evaluation.labelled``). The configured judge compares each pair in both orders (response1 = model_a), its
decision rule makes one label per pair, and ``evaluation.qualify`` scores it against the majority beside the
"longer response wins" baseline (agreement with and without ties, kappa, first-position and flip rates, the
longer-answer share). Also:

- ``agreement_non_tie_prob_avg`` (judges that report verdict probabilities): on the non-tie pairs, the label
  from the probabilities averaged over both orders, the reading behind issue 6's "49.5%" calibration.
- ``gpt35`` / ``pandalm7b``: the bundled judgments' agreement on the same pairs (read with this project's
  verdict parser: "garbage" is unparsed and counts as a miss, as in PandaLM's 69.8% for GPT-3.5).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.evaluation.labelled import load_pairs
from ift_select.evaluation.parse import parse_verdict
from ift_select.evaluation.qualify import judge_labelled, longer_baseline, score_labels
from ift_select.llm import Backend, RequestCache
from ift_select.llm.templates import Template

TEST_SET = "pandalm_human"
_BUNDLED = {"gpt35": ("gpt-3.5-turbo-testset-v1.json", "gpt_result"),
            "pandalm7b": ("pandalm-7b-testset-v1.json", "pandalm_result")}


def _bundled_label(value: Any, position_label: dict[str, int]) -> int | None:
    if isinstance(value, int) and value in (0, 1, 2):  # PandaLM-7B: 0 tie, 1, 2
        return value
    parsed = parse_verdict(str(value)) if value is not None else None  # GPT-3.5: "1", "2", "Tie", "garbage"
    return position_label[parsed] if parsed else None


def bundled_agreement(human: pd.DataFrame, data_dir: str | Path, which: str) -> dict[str, Any] | None:
    """Agreement of PandaLM's bundled GPT-3.5 or PandaLM-7B judgments on ``human``'s pairs (None if absent)."""
    name, field = _BUNDLED[which]
    path = Path(data_dir) / name
    if not path.exists():
        return None
    by_idx = {str(r["idx"]): r[field] for r in json.loads(path.read_text(encoding="utf-8"))}
    position_label = {"1": 1, "2": 2, "tie": 0}
    predicted = pd.Series([_bundled_label(by_idx.get(i), position_label) for i in human["idx"]], dtype=object)
    return score_labels(human, predicted)


def prob_average_labels(judgments: pd.DataFrame, human: pd.DataFrame) -> pd.Series | None:
    """1 or 2 by the judge's verdict probabilities averaged over both orders (None without probabilities):
    a softer reading than the two-order rule, which turns a position-following judge into ties."""
    if "prob_a" not in judgments or judgments["prob_a"].notna().sum() == 0:
        return None
    mean = judgments.groupby("item_id")[["prob_a", "prob_b"]].mean()
    labels = {i: (1 if r.prob_a > r.prob_b else 2) for i, r in mean.dropna().iterrows()}
    return pd.Series([labels.get(str(i)) for i in human["idx"]], dtype=object)


def measure_agreement(human_path: str | Path, backend: Backend, template: Template,
                      cache: RequestCache | None, limit: int | None = None, sample: int | None = None,
                      seed: int = 0, decision: str = "two_order", **judge_kwargs: Any) -> dict[str, Any]:
    """Run the judge on the human-annotated pairs (both orders) and return the agreement figures, the
    longer-wins baseline and the bundled judges' figures on the same pairs; with ``limit`` or ``sample``,
    the baseline and bundled figures of the whole file are added under ``full_file``."""
    human, coerced = load_pairs(human_path, limit, sample, seed)
    figures, judgments = judge_labelled(human, TEST_SET, backend, template, cache, decision, seed=seed,
                                        **judge_kwargs)
    result: dict[str, Any] = {**figures, "coerced_booleans": coerced, "limit": limit, "sample": sample}
    result["baseline"] = result["baseline_longer"]  # the figure to beat, beside agreement_non_tie
    averaged = prob_average_labels(judgments, human)
    if averaged is not None:  # non-tie pairs only: this reading never says "tie"
        non_tie = (human["label"] != 0).to_numpy()
        result["agreement_non_tie_prob_avg"] = score_labels(human[non_tie], averaged[non_tie])["agreement"]
    data_dir = Path(human_path).parent
    for which in _BUNDLED:
        result[which] = bundled_agreement(human, data_dir, which)
    if limit or sample:
        full, _ = load_pairs(human_path)
        result["full_file"] = {**longer_baseline(full),
                               **{w: bundled_agreement(full, data_dir, w) for w in _BUNDLED}}
    return result
