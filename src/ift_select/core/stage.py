"""The one entry path of every DVC stage: the stage script, the CLI and ``accelerate launch`` all come here.

    python stages/train.py full                  # what dvc.yaml runs
    ift-select stage train full                  # the same from the command line
    python -m ift_select.core.stage train full   # what `accelerate launch -m` runs (train.launcher: accelerate)

A stage body lives in the subpackage that owns its concern (``MODULES``) and is a :class:`Stage`: a function
``(params, key) -> metrics``. The runner loads params.yaml, runs the body, writes its metrics file
(``metrics/<name>[_<key>].json``), records the run in MLflow and turns an :class:`IftSelectError` into one
line on stderr and exit status 1.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ift_select.core import audit, devices
from ift_select.core.config import load_params
from ift_select.core.errors import ConfigError, IftSelectError
from ift_select.core.io import write_json
from ift_select.core.params import Params

Body = Callable[[Params, str], dict[str, Any]]

MODULES = {  # stage name -> the module whose STAGES defines it
    "prepare": "ift_select.data.stage", "testset": "ift_select.data.stage",
    "score": "ift_select.grading.stage", "embed": "ift_select.embedding.stage",
    "qualify_grader": "ift_select.grading.stage", "qualify_pairs": "ift_select.grading.stage",
    "arms": "ift_select.selection.stage", "select": "ift_select.selection.stage",
    "base_model": "ift_select.llm.stage", "train": "ift_select.training.stage",
    "generate": "ift_select.training.stage", "reference": "ift_select.evaluation.stage",
    "judge": "ift_select.evaluation.stage", "labelled_pairs": "ift_select.evaluation.stage",
    "qualify_judge": "ift_select.evaluation.stage", "report": "ift_select.reporting.stage",
}


@dataclass(frozen=True)
class Stage:
    """A stage body and how its results are recorded. ``keyed``: a ``foreach`` stage, run as ``name@key``.
    ``metrics_path``: where its metrics go (default ``metrics/<name>[_<key>].json``). ``experiment``: the last
    stage, which also records the experiment's figures and ``artifacts`` on the experiment's MLflow run.
    ``accelerate``: under ``train.launcher: accelerate`` the stage runs again under ``accelerate launch``.
    ``logged(key)``: settings to record on its MLflow run beside its declared params."""

    name: str
    body: Body
    keyed: bool = False
    metrics_path: str | None = None
    artifacts: tuple[str, ...] = ()
    experiment: bool = False
    accelerate: bool = False
    logged: Callable[[str], dict[str, Any]] | None = None  # more params for its MLflow run (from its deps)

    def address(self, key: str) -> str:
        return f"{self.name}@{key}" if self.keyed else self.name

    def metrics_file(self, key: str) -> Path:
        return Path(self.metrics_path or (f"metrics/{self.name}_{key}.json" if self.keyed else
                                          f"metrics/{self.name}.json"))


def lookup(name: str) -> Stage:
    if name not in MODULES:
        raise ConfigError(f"no stage named {name!r} (stages: {', '.join(MODULES)})")
    return importlib.import_module(MODULES[name]).STAGES[name]


def run(stage: Stage, key: str = "") -> dict[str, Any] | None:
    """Run ``stage`` (``key`` for a foreach stage) in the current directory; returns its metrics (None on
    a non-main process under accelerate)."""
    if stage.keyed and not key:
        raise ConfigError(f"stage {stage.name} runs once per item: give the key (e.g. {stage.name}@full -> "
                          f"`ift-select stage {stage.name} full`)")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    start = time.perf_counter()
    params = load_params()
    if all_models_local(params):  # nothing may wait on a hub request when every model is on disk
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if stage.accelerate:
        from ift_select.training.launch import relaunch_if_needed

        relaunch_if_needed(stage.name, key, params.train)
    address = stage.address(key)
    with audit.watching(address, params) as watched:
        metrics = stage.body(watched, key)
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch, only the main process records
        return None
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    if devices.choices():  # what `precision` resolved to on this machine, for every stage that used it
        metrics.setdefault("precision", devices.choices())
    write_json(stage.metrics_file(key), metrics)
    from ift_select.provenance import tracking

    artifacts = [*stage.artifacts, *([stage.metrics_file(key)] if stage.experiment else [])]
    tracking.log_stage(address, params, metrics, artifacts, experiment=stage.experiment,
                       extra_params=stage.logged(key) if stage.logged else None)
    return metrics


def main(name: str | None = None, argv: Sequence[str] | None = None) -> None:
    """``main("train")`` in a stage script (the key comes from argv), or ``main()`` with ``name key`` in argv."""
    args = list(sys.argv[1:] if argv is None else argv)
    if name is None:
        if not args:
            print(f"usage: python -m ift_select.core.stage NAME [KEY] (stages: {', '.join(MODULES)})",
                  file=sys.stderr)
            sys.exit(2)
        name = args.pop(0)
    label = f"{name}@{args[0]}" if args else name
    try:
        audit.trace_if_auditing(label)  # before the stage's module loads: the traced run loads it again
        stage = lookup(name)
        key = args[0] if stage.keyed and args else ""
        label = stage.address(key) if key else name
        run(stage, key)
    except IftSelectError as exc:
        print(f"error: stage {label}: {exc}", file=sys.stderr)
        _record_failure(label, str(exc))
        sys.exit(1)
    except Exception as exc:
        _record_failure(label, f"{type(exc).__name__}: {exc}")
        raise


def _record_failure(label: str, cause: str) -> None:
    """The failure and its cause on the experiment's MLflow run (under accelerate: by the main process)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    from ift_select.provenance import tracking

    try:
        params = load_params()
    except IftSelectError:
        params = None
    tracking.log_failure(label, cause.strip().splitlines()[0] if cause.strip() else cause, params)


def all_models_local(params: Params) -> bool:
    """True when no model spec in params is a hub id (aliases and local paths only)."""
    specs = [params.base_model, params.embed.model]
    specs += [s.model for s in (params.score, params.judge) if s.backend == "local"]
    return not any(spec.count("/") == 1 and not Path(spec).exists() and not spec.endswith(".gguf") for spec in specs)


if __name__ == "__main__":
    main()
