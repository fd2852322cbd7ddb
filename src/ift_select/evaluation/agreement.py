"""How well a judge agrees with people: PandaLM's 999 human-annotated response pairs.

``testset-v1.json`` (../shared/data/pandalm170) holds 999 pairs with three annotators each (0 tie,
1 = response1 better, 2 = response2 better); the label is the 2-of-3 majority (every item has one).
The configured judge compares each pair in both orders (response1 = model_a), the orders are combined by the
paper's two-order rule (win -> 1, lose -> 2, tie -> 0), and the result is compared with the majority:

- ``agreement``: share of all evaluated pairs where the judge's label equals the majority (ties included);
  pairs the judge could not read count as disagreements, as PandaLM's GPT-3.5 "garbage" replies do in the
  69.8% reference figure. ``agreement_parsed`` leaves them out. ``kappa``: Cohen's kappa over readable pairs.
- ``agreement_non_tie``: the same on pairs whose majority is not a tie, beside the "longer response wins"
  baseline on the same pairs (``baseline_longer``: the longer response by characters; equal lengths predict
  nothing and count as misses: 599/894 = 67.0% on the full file. The 67.2% quoted in issue 6 is 601/894 and
  comes from sending equal lengths (7 pairs) to response2; that variant is ``baseline_longer_ties_to_2``).
- ``agreement_non_tie_prob_avg`` (judges that report verdict probabilities): on the same non-tie pairs, the
  label from the probabilities averaged over both orders, the reading behind issue 6's "49.5%" calibration.
- ``gpt35`` / ``pandalm7b``: the bundled judgments' agreement on the same pairs (read with this project's
  verdict parser: "garbage" is unparsed and counts as a miss).

JSON booleans: 6 responses (items 157-164) are JSON ``true``, the answer to "Verify the correctness of the
given statement". They are coerced to the strings "True"/"False" (what the model wrote, in Python's spelling)
and counted in ``coerced_booleans``; rejecting them would drop real pairs for a serialisation accident.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ift_select.core.errors import DataError
from ift_select.evaluation.parse import parse_verdict
from ift_select.evaluation.pairwise import judge_pair
from ift_select.llm import Backend, RequestCache
from ift_select.evaluation.metrics import item_outcomes
from ift_select.llm.templates import Template

TEST_SET = "pandalm_human"
_OUTCOME_LABEL = {"win": 1, "lose": 2, "tie": 0}
_BUNDLED = {"gpt35": ("gpt-3.5-turbo-testset-v1.json", "gpt_result"),
            "pandalm7b": ("pandalm-7b-testset-v1.json", "pandalm_result")}


def _text(value: Any, where: str) -> tuple[str, bool]:
    if isinstance(value, bool):
        return str(value), True
    if not isinstance(value, str):
        raise DataError(f"{where}: expected a string, got {type(value).__name__}")
    return value, False


def load_human(path: str | Path, limit: int | None = None, sample: int | None = None,
               seed: int = 0) -> tuple[pd.DataFrame, int]:
    """The human-annotated pairs (idx, instruction, input, response1, response2, majority) and the number of
    JSON booleans coerced to strings. ``limit`` keeps the first N pairs (in file order, so few instructions);
    ``sample`` a seeded random N pairs (in file order) instead."""
    path = Path(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (PandaLM's testset-v1.json)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    if sample and sample < len(records):
        keep = sorted(np.random.default_rng(seed).choice(len(records), size=sample, replace=False))
        records = [records[i] for i in keep]
    rows, coerced = [], 0
    for n, rec in enumerate(records[:limit] if limit else records):
        where = f"{path}: record {n} (idx {rec.get('idx', '?')})"
        try:
            labels = [int(rec[f"annotator{k}"]) for k in (1, 2, 3)]
            r1, c1 = _text(rec["response1"], f"{where} response1")
            r2, c2 = _text(rec["response2"], f"{where} response2")
        except KeyError as exc:
            raise DataError(f"{where}: missing field {exc.args[0]}") from None
        label, votes = Counter(labels).most_common(1)[0]
        if votes < 2:
            raise DataError(f"{where}: annotators {labels} have no 2-of-3 majority")
        coerced += c1 + c2
        rows.append({"idx": int(rec["idx"]), "instruction": str(rec["instruction"]),
                     "input": str(rec.get("input") or ""), "response1": r1, "response2": r2, "majority": label})
    if not rows:
        raise DataError(f"{path}: no pairs")
    return pd.DataFrame(rows), coerced


def longer_baseline(human: pd.DataFrame) -> dict[str, Any]:
    """"The longer response (characters) wins", on the pairs whose majority is not a tie."""
    non_tie = human[human["majority"] != 0]
    l1, l2 = non_tie["response1"].str.len(), non_tie["response2"].str.len()
    strict = ((l1 > l2) & (non_tie["majority"] == 1)) | ((l2 > l1) & (non_tie["majority"] == 2))
    to_2 = ((l1 > l2) & (non_tie["majority"] == 1)) | ((l1 <= l2) & (non_tie["majority"] == 2))
    n = len(non_tie)
    return {"baseline_longer": round(float(strict.mean()), 4) if n else None,
            "baseline_longer_ties_to_2": round(float(to_2.mean()), 4) if n else None,
            "baseline_equal_lengths": int((l1 == l2).sum()), "n_non_tie": n}


def score_labels(human: pd.DataFrame, predicted: pd.Series) -> dict[str, Any]:
    """Agreement figures of predicted labels (0/1/2, None = unreadable), aligned with ``human``'s rows."""
    from sklearn.metrics import cohen_kappa_score

    truth = human["majority"].to_numpy()
    pred = predicted.to_numpy()
    read = pd.notna(predicted).to_numpy()
    hits = [bool(p is not None and not pd.isna(p) and int(p) == t) for p, t in zip(pred, truth)]
    non_tie = truth != 0
    parsed_hits = [h for h, r in zip(hits, read) if r]
    kappa = cohen_kappa_score(truth[read], pred[read].astype(int)) if read.sum() > 1 else None
    return {
        "n": len(truth),
        "agreement": round(sum(hits) / len(truth), 4),
        "agreement_parsed": round(sum(parsed_hits) / len(parsed_hits), 4) if parsed_hits else None,
        "agreement_non_tie": round(sum(h for h, nt in zip(hits, non_tie) if nt) / int(non_tie.sum()), 4)
        if non_tie.any() else None,
        "kappa": None if kappa is None or pd.isna(kappa) else round(float(kappa), 4),
        "unparsed": int((~read).sum()),
    }


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
    by_idx = {int(r["idx"]): r[field] for r in json.loads(path.read_text(encoding="utf-8"))}
    position_label = {"1": 1, "2": 2, "tie": 0}
    predicted = pd.Series([_bundled_label(by_idx.get(i), position_label) for i in human["idx"]], dtype=object)
    return score_labels(human, predicted)


def human_generations(human: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pairs as two "arms" (response1, response2) in the generation-frame schema."""
    base = pd.DataFrame({"test_set": TEST_SET, "item_id": human["idx"].astype(str),
                         "instruction": human["instruction"], "input": human["input"]})
    return base.assign(output=human["response1"]), base.assign(output=human["response2"])


def judge_labels(judgments: pd.DataFrame, human: pd.DataFrame) -> pd.Series:
    """The judge's two-order label per pair (0/1/2, None when incomplete), aligned with ``human``'s rows."""
    items = item_outcomes(judgments).set_index("item_id")["outcome"]
    return pd.Series([_OUTCOME_LABEL.get(items.get(str(i), "incomplete")) for i in human["idx"]], dtype=object)


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
                      seed: int = 0, **judge_kwargs: Any) -> dict[str, Any]:
    """Run the judge on the human-annotated pairs (both orders) and return the agreement figures, the
    longer-wins baseline and the bundled judges' figures on the same pairs; with ``limit`` or ``sample``,
    the baseline and bundled figures of the whole file are added under ``full_file``."""
    human, coerced = load_human(human_path, limit, sample, seed)
    gen_1, gen_2 = human_generations(human)
    judgments, stats = judge_pair(gen_1, gen_2, "response1", "response2", backend, template, cache,
                                  **judge_kwargs)
    verdicts = judgments["verdict"]
    read = judgments[verdicts.notna()]
    first = ((read["order"] == "ab") & (read["verdict"] == "a")) | ((read["order"] == "ba") & (read["verdict"] == "b"))
    result: dict[str, Any] = {
        **score_labels(human, judge_labels(judgments, human)),
        **longer_baseline(human),
        "judge": f"{backend.name}|prompt:{template.sha}", "prompt": template.path,
        "first_position_rate": round(float(first.mean()), 4) if len(read) else None,
        "unparsed_judgments": int((judgments["status"] != "ok").sum()),
        "by_method": {k: int(v) for k, v in judgments["method"].value_counts().items() if k},
        "coerced_booleans": coerced, "limit": limit, "sample": sample, **stats.to_dict(),
    }
    result["baseline"] = result["baseline_longer"]  # the figure to beat, beside agreement_non_tie
    averaged = prob_average_labels(judgments, human)
    if averaged is not None:  # non-tie pairs only: this reading never says "tie"
        non_tie = (human["majority"] != 0).to_numpy()
        result["agreement_non_tie_prob_avg"] = score_labels(human[non_tie], averaged[non_tie])["agreement"]
    data_dir = Path(human_path).parent
    for which in _BUNDLED:
        result[which] = bundled_agreement(human, data_dir, which)
    if limit or sample:
        full, _ = load_human(human_path)
        result["full_file"] = {**longer_baseline(full),
                               **{w: bundled_agreement(full, data_dir, w) for w in _BUNDLED}}
    return result
