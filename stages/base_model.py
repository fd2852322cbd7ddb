"""Stage base_model: turn params `base_model` (alias, HF dir, .gguf, hub id) into models/base (HF format).

    python stages/base_model.py   (dvc repro base_model)
"""

from pathlib import Path

from ift_select import stage
from ift_select.base_models import materialize
from ift_select.config import Params


def main(params: Params) -> dict:
    return materialize(params.base_model, Path("models/base"))


if __name__ == "__main__":
    stage.run("base_model", main, stage_params=lambda p: {"base_model": p.base_model})
