"""Stage base_model: turn params ``base_model`` (alias, HF dir, .gguf, hub id) into models/base (HF format)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ift_select.core.params import Params
from ift_select.core.stage import Stage
from ift_select.llm.models import materialize
from ift_select.provenance.dvcrepo import check_declared


def base_model(params: Params, key: str) -> dict[str, Any]:
    check_declared({"base_model": params.base_model})
    return materialize(params.base_model, Path("models/base"))


STAGES = {"base_model": Stage("base_model", base_model)}
