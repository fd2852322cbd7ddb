"""A directory where the judge and qualify_judge stages can run on their own: params.yaml, two arms'
generations, a prepared test set with reference answers, labelled pairs, the prompts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [("What is 2 + 2?", "2 + 2 = 4.", "2 + 2 = 5.", "4"),
             ("Name the capital of France.", "Paris is the capital of France.", "Lyon.", "Paris."),
             ("Give a synonym for 'happy'.", "Glad.", "Sad.", None),
             ("Is 9 a prime number?", "No: 9 = 3 x 3.", "Yes, 9 is prime.", "No, 9 is divisible by 3.")]


def make_workdir(root: Path, judge: dict[str, Any], answers_a: list[str] | None = None,
                 mlflow_db: Path | None = None) -> Path:
    """``judge``: the params' judge section overrides. Arms good (a) and bad (b); the third item has no
    reference answer. ``answers_a`` replaces arm a's answers; ``mlflow_db``: a store shared between runs."""
    shutil.copytree(REPO / "prompts", root / "prompts")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["test_sets"] = {"t": {"path": "data/t.jsonl", "format": "auto"}}
    params["judge"] = {**params["judge"], "pairs": {"good_vs_bad": {"a": "good", "b": "bad"},
                                                    "good_vs_ref": {"a": "good", "b": "reference"}}, **judge}
    params["arms"] = {"good": {"method": "full"}, "bad": {"method": "full"}}
    params["report"]["bootstrap"] = 50
    params["mlflow"]["tracking_uri"] = f"sqlite:///{mlflow_db or root / 'mlflow.db'}"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ids = [f"t/{k}" for k in range(len(QUESTIONS))]
    tests = pd.DataFrame({"id": ids, "test_set": "t", "instruction": [q[0] for q in QUESTIONS], "input": "",
                          "reference": [q[3] for q in QUESTIONS], "category": "misc"})
    (root / "data/prepared/tests").mkdir(parents=True)
    tests.to_parquet(root / "data/prepared/tests/t.parquet")
    (root / "data/generations").mkdir(parents=True)
    outputs = {"good": answers_a or [q[1] for q in QUESTIONS], "bad": [q[2] for q in QUESTIONS]}
    for arm, texts in outputs.items():
        pd.DataFrame({"test_set": "t", "item_id": ids, "instruction": tests["instruction"], "input": "",
                      "output": texts, "arm": arm}).to_parquet(root / f"data/generations/{arm}.parquet")
    refs = tests[tests["reference"].notna()]
    pd.DataFrame({"test_set": "t", "item_id": refs["id"], "instruction": refs["instruction"], "input": "",
                  "output": refs["reference"], "arm": "reference"}).to_parquet(
        root / "data/generations/reference.parquet")
    return root
