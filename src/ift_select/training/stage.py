"""Stages train@<arm> and generate@<arm>.

train:     data/selected/<arm>.parquet + models/base -> models/<arm>/ (+ lineage.json) and
           metrics/train_<arm>.json. Under train.launcher: accelerate it runs itself under accelerate launch.
generate:  models/<arm> + the configured test sets (data/prepared/tests/<name>.parquet) ->
           data/generations/<arm>.parquet and metrics/generate_<arm>.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ift_select.core.io import read_parquet, write_json, write_parquet
from ift_select.core.params import Params
from ift_select.core.stage import Stage
from ift_select.data.prepared import test_items
from ift_select.training.generation import generate
from ift_select.training.loop import train

def train_stage(params: Params, key: str) -> dict[str, Any]:
    from ift_select.provenance import lineage

    selection_path = Path(f"data/selected/{key}.parquet")
    out = Path(f"models/{key}")
    metrics = train(read_parquet(selection_path), "models/base", out, params.train, params.train.seed)
    metrics.pop("losses", None)  # per-step losses: too long for a metrics file (final_loss summarises them)
    if out.exists():  # only the main process writes the model
        write_json(out / "lineage.json", lineage.build(key, params, selection_path, metrics))
    return metrics


def generate_stage(params: Params, key: str) -> dict[str, Any]:
    answers = generate(f"models/{key}", test_items(params), params.generate, params.generate.seed)
    answers.insert(0, "arm", key)
    write_parquet(Path(f"data/generations/{key}.parquet"), answers)
    return {"arm": key, "items": len(answers), "test_sets": sorted(answers["test_set"].unique().tolist()),
            "mean_tokens_out": round(float(answers["tokens_out"].mean()), 2) if len(answers) else 0.0,
            "prompts_cut": int((answers["prompt_cut_tokens"] > 0).sum()),
            "prompt_tokens_cut": int(answers["prompt_cut_tokens"].sum())}


STAGES = {s.name: s for s in (Stage("train", train_stage, keyed=True, accelerate=True),
                              Stage("generate", generate_stage, keyed=True))}
