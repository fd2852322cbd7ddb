"""Stage train@<arm>: fine-tune the base model on one arm's selection; writes models/<arm>/ + lineage.json.

    python stages/train.py alpagasus       (dvc repro train@alpagasus)
With train.launcher: accelerate, the script re-runs itself under `accelerate launch --config_file ...`.
"""

import sys
from pathlib import Path

from ift_select import lineage, stage
from ift_select.config import Params
from ift_select.io import read_parquet, write_json
from ift_select.launch import relaunch_if_needed
from ift_select.training import train

ARM = sys.argv[1] if len(sys.argv) > 1 else "full"


def main(params: Params) -> dict:
    selection_path = Path(f"data/selected/{ARM}.parquet")
    out = Path(f"models/{ARM}")
    metrics = train(read_parquet(selection_path), "models/base", out, params.train, params.train.seed)
    metrics.pop("losses", None)  # per-step losses: too long for a metrics file (final_loss summarises them)
    if out.exists():  # only the main process writes the model
        write_json(out / "lineage.json", lineage.build(ARM, params, selection_path, metrics))
    return metrics


if __name__ == "__main__":
    relaunch_if_needed(__file__, sys.argv[1:])
    stage.run(f"train_{ARM}", main, stage_params=lambda p: {"train": p.train.__dict__, "base_model": p.base_model})
