"""What every DVC stage script shares: params, timing, metrics output, MLflow, one-line errors."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ift_select.config import Params, load_params
from ift_select.errors import IftSelectError
from ift_select.io import write_json

METRICS_DIR = Path("metrics")

StageFn = Callable[[Params], dict[str, Any]]


def run(name: str, fn: StageFn, stage_params: Callable[[Params], dict] | None = None,
        artifacts: Callable[[Params], list] | None = None, parent_metrics: bool = False,
        metrics_path: Path | None = None) -> None:
    """Run a stage body: it returns its metrics, which go to ``metrics_path`` (default metrics/<name>.json)
    and to MLflow."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    start = time.perf_counter()
    try:
        params = load_params()
        if all_models_local(params):  # nothing may wait on a hub request when every model is on disk
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        metrics = fn(params)
        if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch, only the main process records
            return
        metrics["seconds"] = round(time.perf_counter() - start, 2)
        write_json(metrics_path or METRICS_DIR / f"{name}.json", metrics)
        from ift_select import tracking

        tracking.log_stage(name, params, metrics, stage_params(params) if stage_params else None,
                           artifacts(params) if artifacts else (), parent_metrics=parent_metrics)
    except IftSelectError as exc:
        print(f"error: stage {name}: {exc}", file=sys.stderr)
        sys.exit(1)


def all_models_local(params: Params) -> bool:
    """True when no model spec in params is a hub id (aliases and local paths only)."""
    specs = [params.base_model, params.embed.model]
    specs += [s.model for s in (params.score, params.judge) if s.backend == "local"]
    return not any(spec.count("/") == 1 and not Path(spec).exists() and not spec.endswith(".gguf") for spec in specs)
