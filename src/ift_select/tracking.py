"""MLflow tracking: one parent run per DVC experiment, one nested run per stage execution.

The store defaults to ``sqlite:///<repository root>/mlflow.db`` (also under ``dvc exp run --temp/--queue``,
whose copies resolve to the main repository). The parent run is found by its tag ``ift_select.exp``: the DVC
experiment name when ``DVC_EXP_NAME`` is set, else ``workspace@<git commit>``.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ift_select.config import Params, flatten
from ift_select.paths import default_tracking_uri, repo_root

EXP_TAG = "ift_select.exp"
KIND_TAG = "ift_select.kind"
_MAX_PARAM = 500


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path.cwd(), capture_output=True, text=True,
                             check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def experiment_key() -> str:
    name = os.environ.get("DVC_EXP_NAME")
    return name if name else f"workspace@{git_commit()[:10]}"


def _mlflow(params: Params):
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(params.mlflow.tracking_uri or default_tracking_uri())
    if mlflow.get_experiment_by_name(params.mlflow.experiment) is None:
        # Artifacts beside the store, not in the cwd (a temporary copy under dvc exp run --temp/--queue).
        artifacts = (repo_root() / "mlartifacts").as_uri() if not params.mlflow.tracking_uri else None
        try:
            mlflow.create_experiment(params.mlflow.experiment, artifact_location=artifacts)
        except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel stage
            pass
    return mlflow


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v)[:_MAX_PARAM] if v is not None else "null") for k, v in values.items()}


def numeric_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten nested metrics and keep the numbers (MLflow metrics are floats)."""
    out = {}
    for key, value in flatten(metrics, prefix).items():
        if isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, (int, float)):
            out[key] = float(value)
    return {k.replace("@", "_"): v for k, v in out.items()}


def parent_run_id(mlflow, params: Params) -> str:
    key = experiment_key()
    experiment = mlflow.get_experiment_by_name(params.mlflow.experiment)
    found = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.`{EXP_TAG}` = '{key}' and tags.`{KIND_TAG}` = 'experiment'",
        max_results=1,
        output_format="list",
    )
    if found:
        return found[0].info.run_id
    run = mlflow.MlflowClient().create_run(
        experiment.experiment_id,
        run_name=key,
        tags={EXP_TAG: key, KIND_TAG: "experiment", "git_commit": git_commit(),
              "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "")},
    )
    client = mlflow.MlflowClient()
    for name, value in _clean(flatten(params_dict())).items():
        client.log_param(run.info.run_id, name, value)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def params_dict() -> dict[str, Any]:
    import yaml

    path = Path("params.yaml")
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def log_stage(
    stage: str,
    params: Params,
    metrics: dict[str, Any],
    stage_params: dict[str, Any] | None = None,
    artifacts: Iterable[str | Path] = (),
    parent_metrics: bool = False,
) -> str:
    """Record one stage execution as a nested run; returns its run id.
    ``parent_metrics``: also log the metrics on the experiment's parent run (the report stage does)."""
    mlflow = _mlflow(params)
    parent = parent_run_id(mlflow, params)
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(params.mlflow.experiment)
    run = client.create_run(
        experiment.experiment_id,
        run_name=stage,
        tags={"mlflow.parentRunId": parent, EXP_TAG: experiment_key(), KIND_TAG: "stage", "stage": stage,
              "git_commit": git_commit()},
    )
    run_id = run.info.run_id
    for name, value in _clean(flatten(stage_params or {})).items():
        client.log_param(run_id, name, value)
    values = numeric_metrics(metrics)
    for name, value in values.items():
        client.log_metric(run_id, name, value)
    for path in artifacts:
        if Path(path).exists():
            client.log_artifact(run_id, str(path))
    if parent_metrics:
        for name, value in values.items():
            client.log_metric(parent, name, value)
        for path in artifacts:
            if Path(path).exists():
                client.log_artifact(parent, str(path))
    client.set_terminated(run_id)
    return run_id
