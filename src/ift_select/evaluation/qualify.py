"""Is the judge worth believing? Its verdicts on labelled pairs, beside the "longer answer wins" baseline.

The judge answers each labelled pair (response1 vs response2, label 1/2/0 = tie) in both orders; the orders
become one label by its decision rule (win -> 1, lose -> 2, tie -> 0). Figures:

- ``agreement``: share of all pairs where the judge's label equals the truth (ties included; pairs it could
  not read count as misses); ``agreement_parsed`` leaves those out; ``agreement_non_tie``: the same on the
  pairs whose truth is not a tie; ``kappa``: Cohen's kappa over readable pairs (labels 0, 1, 2).
- ``first_position_rate``, ``flip_rate``, ``hard_flip_rate``: of the raw per-order verdicts (what swapping the
  answers does to this judge, before any debiasing); ``tie_rate``: share of readable pairs it called a tie.
- ``longer_share``: of the judge's decided pairs of unequal length, the share it gave to the longer answer.
- ``baseline_longer``: "the longer response (characters) wins" on the non-tie pairs; equal lengths predict
  nothing and count as misses (599/894 = 67.0% on PandaLM's file; 601/894 = 67.2%, ``baseline_longer_ties_to_2``,
  sends them to response2). ``baseline_longer_all``: the baseline over all pairs (it never says tie).
- ``beats_longer``: agreement_non_tie > baseline_longer; ``beats_longer_ci``: a seeded paired bootstrap
  interval of the difference, so a narrow win on few pairs reads as one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ift_select.evaluation.labelled import as_generations
from ift_select.evaluation.metrics import first_position_rate, flips, item_outcomes, row_verdicts
from ift_select.evaluation.pairwise import judge_pair
from ift_select.llm import Backend, RequestCache
from ift_select.llm.templates import Template

OUTCOME_LABEL = {"win": 1, "lose": 2, "tie": 0}


def judge_labels(judgments: pd.DataFrame, pairs: pd.DataFrame, decision: str | None = None) -> pd.Series:
    """The judge's label per pair (0/1/2, None when incomplete), aligned with ``pairs``' rows."""
    items = item_outcomes(judgments, decision=decision).set_index("item_id")["outcome"]
    return pd.Series([OUTCOME_LABEL.get(items.get(str(i), "incomplete")) for i in pairs["idx"]], dtype=object)


def score_labels(pairs: pd.DataFrame, predicted: pd.Series) -> dict[str, Any]:
    """Agreement figures of predicted labels (0/1/2, None = unreadable), aligned with ``pairs``' rows."""
    from sklearn.metrics import cohen_kappa_score

    truth = pairs["label"].to_numpy()
    read = pd.notna(predicted).to_numpy()
    pred = np.array([int(p) if r else -1 for p, r in zip(predicted, read)])
    hits = pred == truth
    non_tie = truth != 0
    kappa = cohen_kappa_score(truth[read], pred[read], labels=[0, 1, 2]) if read.sum() > 1 else None
    return {
        "n": len(truth),
        "agreement": round(float(hits.mean()), 4),
        "agreement_parsed": round(float(hits[read].mean()), 4) if read.any() else None,
        "agreement_non_tie": round(float(hits[non_tie].mean()), 4) if non_tie.any() else None,
        "kappa": None if kappa is None or np.isnan(kappa) else round(float(kappa), 4),
        "tie_rate": round(float((pred[read] == 0).mean()), 4) if read.any() else None,
        "unparsed": int((~read).sum()),
    }


def longer_labels(pairs: pd.DataFrame) -> np.ndarray:
    """The longer-wins baseline's label per pair: 1, 2, or 0 on equal lengths."""
    l1, l2 = pairs["response1"].str.len().to_numpy(), pairs["response2"].str.len().to_numpy()
    return np.where(l1 > l2, 1, np.where(l2 > l1, 2, 0))


def longer_baseline(pairs: pd.DataFrame) -> dict[str, Any]:
    """"The longer response (characters) wins", on the pairs whose label is not a tie, and on all pairs."""
    longer, truth = longer_labels(pairs), pairs["label"].to_numpy()
    non_tie = truth != 0
    n = int(non_tie.sum())
    strict = (longer == truth)[non_tie]
    to_2 = (np.where(longer == 0, 2, longer) == truth)[non_tie]
    hits_all = (longer == truth) & (longer != 0)
    return {"baseline_longer": round(float(strict.mean()), 4) if n else None,
            "baseline_longer_ties_to_2": round(float(to_2.mean()), 4) if n else None,
            "baseline_longer_all": round(float(hits_all.mean()), 4),
            "baseline_equal_lengths": int((longer[non_tie] == 0).sum()), "n_non_tie": n}


def _difference_ci(judge_hits: np.ndarray, base_hits: np.ndarray, bootstrap: int, seed: int,
                   ci: float = 0.95) -> list[float] | None:
    if len(judge_hits) == 0 or bootstrap <= 0:
        return None
    idx = np.random.default_rng(seed).integers(0, len(judge_hits), size=(bootstrap, len(judge_hits)))
    diff = judge_hits[idx].mean(axis=1) - base_hits[idx].mean(axis=1)
    return [round(float(q), 4) for q in np.quantile(diff, [(1 - ci) / 2, 1 - (1 - ci) / 2])]


def qualification(judgments: pd.DataFrame, pairs: pd.DataFrame, decision: str | None = None,
                  bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every figure of the module docstring for one labelled set, plus ``by_flaw`` when pairs have a flaw."""
    predicted = judge_labels(judgments, pairs, decision)
    items = item_outcomes(judgments, decision=decision)
    longer = longer_labels(pairs)
    pred = np.array([-1 if pd.isna(p) else int(p) for p in predicted])
    decided = (pred > 0) & (longer > 0)
    truth = pairs["label"].to_numpy()
    non_tie = truth != 0
    result: dict[str, Any] = {
        **score_labels(pairs, predicted),
        "first_position_rate": first_position_rate(judgments, row_verdicts(judgments)),
        **flips(items),
        "longer_share": round(float((pred[decided] == longer[decided]).mean()), 4) if decided.any() else None,
        **longer_baseline(pairs),
        "labels": {str(k): int(v) for k, v in pd.Series(truth).value_counts().sort_index().items()},
    }
    judge_hits, base_hits = (pred == truth)[non_tie].astype(float), (longer == truth)[non_tie].astype(float)
    result["beats_longer"] = bool(result["agreement_non_tie"] is not None and result["baseline_longer"] is not None
                                  and result["agreement_non_tie"] > result["baseline_longer"])
    result["beats_longer_ci"] = _difference_ci(judge_hits, base_hits, bootstrap, seed)
    if "flaw" in pairs:
        result["by_flaw"] = {str(flaw): {"n": int(len(g)), "agreement": round(float((pred[g.index] == truth[g.index])
                                                                                     .mean()), 4),
                                         "baseline_longer": round(float((longer[g.index] == truth[g.index]).mean()), 4)}
                             for flaw, g in pairs.reset_index(drop=True).groupby("flaw")}
    return result


def judge_labelled(pairs: pd.DataFrame, name: str, backend: Backend, template: Template,
                   cache: RequestCache | None, decision: str = "two_order", bootstrap: int = 1000, seed: int = 0,
                   **judge_kwargs: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """The judge on labelled ``pairs`` (both orders, response1 as model_a): its figures (with the run's
    counts and seconds per pair) and its judgments."""
    gen_1, gen_2 = as_generations(pairs, name)
    judgments, stats = judge_pair(gen_1, gen_2, "response1", "response2", backend, template, cache,
                                  decision=decision, **judge_kwargs)
    figures = {
        **qualification(judgments, pairs, decision, bootstrap=bootstrap, seed=seed),
        "judge": f"{backend.name}|prompt:{template.sha}", "prompt": template.path, "decision": decision,
        "unparsed_judgments": int((judgments["status"] != "ok").sum()),
        "error_judgments": int((judgments["status"] == "error").sum()),
        "by_method": {k: int(v) for k, v in judgments["method"].value_counts().items() if k},
        **stats.to_dict(), "seconds_per_pair": round(stats.seconds / len(pairs), 3),
    }
    return figures, judgments


def verdict(sets: dict[str, dict[str, Any]], kinds: dict[str, str]) -> tuple[bool, str, list[str]]:
    """(qualified, the kind it was decided on, the sets that decided it): the judge must beat longer-wins on
    every human-labelled set when there is one, else on every constructed set."""
    deciding = [name for name, kind in kinds.items() if kind == "human" and name in sets] or \
        [name for name, kind in kinds.items() if kind == "constructed" and name in sets]
    if not deciding:
        return False, "none", []
    kind = kinds[deciding[0]]
    return all(sets[name]["beats_longer"] for name in deciding), kind, deciding
