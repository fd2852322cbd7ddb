"""Stage generate@<arm>: the arm's model answers every configured test set.

    python stages/generate.py alpagasus    (dvc repro generate@alpagasus)
Writes data/generations/<arm>.parquet and metrics/generate_<arm>.json.
"""

import sys
from pathlib import Path

import pandas as pd

from ift_select import stage
from ift_select.config import Params
from ift_select.generation import generate
from ift_select.io import write_parquet

ARM = sys.argv[1] if len(sys.argv) > 1 else "full"


def main(params: Params) -> dict:
    tests = sorted(Path("data/prepared/tests").glob("*.parquet"))
    items = pd.concat([pd.read_parquet(t) for t in tests], ignore_index=True)
    answers = generate(f"models/{ARM}", items, params.generate, params.generate.seed)
    answers.insert(0, "arm", ARM)
    write_parquet(Path(f"data/generations/{ARM}.parquet"), answers)
    return {"arm": ARM, "items": len(answers), "test_sets": sorted(answers["test_set"].unique().tolist()),
            "mean_tokens_out": round(float(answers["tokens_out"].mean()), 2) if len(answers) else 0.0}


if __name__ == "__main__":
    stage.run(f"generate_{ARM}", main, stage_params=lambda p: {"generate": p.generate.__dict__})
