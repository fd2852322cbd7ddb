"""Stage select@<arm>: pick the training rows of one arm (alpagasus, car, random, full).
(Named select_arm.py: a script called select.py would shadow the stdlib module `select`.)

    python stages/select_arm.py alpagasus      (dvc repro select@alpagasus)
Writes data/selected/<arm>.parquet and metrics/select_<arm>.json.
"""

import json
import sys
from pathlib import Path

import numpy as np

from ift_select import stage
from ift_select.config import Params
from ift_select.io import read_parquet, write_parquet
from ift_select.selection import select_arm

ARM = sys.argv[1] if len(sys.argv) > 1 else "full"


def main(params: Params) -> dict:
    pool = read_parquet("data/prepared/pool.parquet")
    scores = read_parquet("data/scores/scores.parquet") if ARM != "full" else None
    embeddings = None
    if ARM == "car":
        emb = Path("data/embeddings")
        embeddings = (np.load(emb / "pool.npy"), json.loads((emb / "ids.json").read_text()))
    selected, info = select_arm(ARM, params, pool, scores, embeddings)
    write_parquet(Path(f"data/selected/{ARM}.parquet"), selected)
    return info


if __name__ == "__main__":
    stage.run(f"select_{ARM}", main)
