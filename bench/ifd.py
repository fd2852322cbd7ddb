"""An IFD-style grader (Cherry LLM, Li et al. 2023; Superfiltering, Li et al. 2024) measured on flaw labels,
alone and combined with the grader columns of a scores file, beside output length.

    python bench/ifd.py                      # the prepared sample + the score stage's data/scores/scores.parquet
    python bench/ifd.py --pool /tmp/dev/pool.jsonl --scores none   # another labelled pool: IFD and length only

IFD(Q, A) = loss(A | Alpaca prompt of Q) / loss(A), mean token cross-entropy of the answer under SmolLM2-135M-
Instruct (the shipped model; Superfiltering shows a small model's IFD ranks like a large one's). The papers keep
high-IFD rows and drop IFD >= 1 (the instruction does not help predict the answer): that fixed rule is the
score measured here, ``ifd_paper`` = IFD below 1, else 0; an empty answer has no tokens and scores lowest. The
other orientation (``ifd_low``: 1 - IFD, "the instruction explains the answer") is printed too, and neither is
chosen by the labels. Combinations are the equal-weight mean of two columns' ranks, fixed before measuring.
The labels (``_flaw``: "" clean) only measure. Prints the CPU; the last line is one JSON object with
``ratio`` (the papers' rule's AUC / output length's) and ``goal`` (AUC >= 0.85).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from grading import REPO, machine

from ift_select.grading.agreement import auc, ranked
from ift_select.llm.models import SMOLLM2, model_dir
from ift_select.training.prompting import alpaca_prompt, load_tokenizer

GOAL_AUC = 0.85  # issue 12's goal for a default grader on the sample's flaw labels


def answer_losses(rows: pd.DataFrame, model_path: str, max_length: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(loss of the answer after its prompt, loss of the answer alone) per row; NaN for an empty answer."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32).eval()

    def mean_loss(context: list[int], answer: list[int]) -> float:
        ids = torch.tensor([(context + answer)[-max_length:]])
        labels = ids.clone()
        labels[0, : max(0, ids.shape[1] - len(answer))] = -100  # only the answer's tokens are scored
        with torch.no_grad():
            return float(model(input_ids=ids, labels=labels).loss)

    conditioned, direct = [], []
    for row in rows.itertuples():
        answer = list(tokenizer(str(row.output), add_special_tokens=False)["input_ids"])
        if len(answer) < 2:  # nothing to predict without the prompt
            conditioned.append(np.nan), direct.append(np.nan)
            continue
        prompt = list(tokenizer(alpaca_prompt(row.instruction, row.input), add_special_tokens=True)["input_ids"])
        conditioned.append(mean_loss(prompt, answer))
        direct.append(mean_loss([], answer))  # the first token has no context: scored from the second on
    return np.array(conditioned), np.array(direct)


def rank_mean(*columns: np.ndarray) -> np.ndarray:
    return np.mean([pd.Series(ranked(c)).rank().to_numpy() for c in columns], axis=0)


def figures(name: str, values: np.ndarray, clean: np.ndarray, flaws: pd.Series) -> dict[str, Any]:
    per_kind = {kind: auc(np.r_[values[clean], values[(flaws == kind).to_numpy()]],
                          np.r_[np.ones(clean.sum()), np.zeros((flaws == kind).sum())])
                for kind in sorted(set(flaws) - {""})}
    return {"column": name, "auc": auc(values, clean.astype(int)), "by_flaw": per_kind}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=Path, default=REPO / "data/prepared/pool.parquet",
                        help="rows with a _flaw column: a prepared pool (parquet, with ids) or a JSONL pool")
    parser.add_argument("--scores", default=str(REPO / "data/scores/scores.parquet"),
                        help="a score stage's parquet, joined to --pool by id ('none': skip)")
    args = parser.parse_args()
    print(json.dumps({"machine": machine()}))
    pool = (pd.read_parquet(args.pool) if args.pool.suffix == ".parquet" else pd.read_json(args.pool, lines=True))
    pool = pool.fillna("")
    clean = (pool["_flaw"] == "").to_numpy()
    start = time.perf_counter()
    conditioned, direct = answer_losses(pool, model_dir(SMOLLM2))
    seconds = time.perf_counter() - start
    ifd = conditioned / direct
    columns = {"length": pool["output"].str.len().to_numpy(dtype=float),
               "ifd_paper": np.where(np.isnan(ifd), np.nan, np.where(ifd < 1, ifd, 0.0)),
               "ifd_low": 1 - ifd}
    if args.scores != "none":
        scores = pool[["id"]].merge(pd.read_parquet(args.scores), on="id", how="left", validate="one_to_one")
        for column in ("score", "score_expected", "iqs"):
            if column in scores:
                columns[column] = scores[column].to_numpy(dtype=float)
    for other in [c for c in columns if c not in ("ifd_paper", "ifd_low")]:
        for ifd_column in ("ifd_paper", "ifd_low"):
            columns[f"{ifd_column}+{other}"] = rank_mean(columns[ifd_column], columns[other])
    results = [figures(name, values, clean, pool["_flaw"]) for name, values in columns.items()]
    for row in results:
        print(f"{row['column']:>28}  AUC {row['auc']}  " + "  ".join(f"{k} {v}" for k, v in row["by_flaw"].items()))
    by_column = {row["column"]: row["auc"] for row in results}
    print(json.dumps({"pool": str(args.pool), "rows": len(pool), "flawed": int((~clean).sum()),
                      "ifd_seconds": round(seconds, 1), "empty_answers": int(np.isnan(ifd).sum()),
                      "ifd_at_least_1": int((ifd >= 1).sum()), "results": results,
                      "ratio": round(by_column["ifd_paper"] / by_column["length"], 3),  # the papers' rule vs length
                      "goal": {"auc_min": GOAL_AUC, "met": by_column["ifd_paper"] >= GOAL_AUC}}))


if __name__ == "__main__":
    main()
