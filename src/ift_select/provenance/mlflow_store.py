"""The MLflow store and the experiment's identity: where runs go, the parent run of a DVC experiment, and
the names and values MLflow accepts.

Where: ``params.mlflow.tracking_uri``, else ``sqlite:///<repository root>/mlflow.db`` with artifacts in
``<repository root>/mlartifacts`` -- the main repository also under ``dvc exp run --temp/--queue`` (their
copies live in ``.dvc/tmp/exps/``, see ``ift_select.core.paths.repo_root``). Writers take a file lock
(``.ift-cache/mlflow.lock``), so queued experiments running in parallel do not fight over SQLite.

The parent run (tag ``ift_select.kind = experiment``) is found again by its tag ``ift_select.exp``: named after
``DVC_EXP_NAME`` (set by ``dvc exp run``, also with ``--temp``/``--queue``), else
``workspace@<commit[:10]>+<md5(params.yaml)[:8]>`` (a plain ``dvc repro``; editing params.yaml starts a new
parent). Its params are the whole params.yaml, flattened; its tags the git commit, the DVC experiment name
and the params file's md5.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ift_select.core.config import flatten
from ift_select.core.params import Params
from ift_select.core.paths import cache_dir, default_tracking_uri, repo_root

EXP_TAG = "ift_select.exp"
KIND_TAG = "ift_select.kind"
_MAX_PARAM = 6000
_BAD_KEY = re.compile(r"[^\w./\- :]")


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path.cwd(), capture_output=True, text=True,
                             check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def source_commit() -> str:
    """The commit the run's code and params come from: under ``dvc exp run`` the experiment's baseline
    (``DVC_EXP_BASELINE_REV``; the temporary copy's own HEAD is a throwaway commit), else ``git HEAD``."""
    return os.environ.get("DVC_EXP_BASELINE_REV") or git_commit()


def params_md5(path: str | Path = "params.yaml") -> str:
    path = Path(path)
    return hashlib.md5(path.read_bytes()).hexdigest() if path.exists() else "none"


def experiment_key() -> str:
    name = os.environ.get("DVC_EXP_NAME")
    return name if name else f"workspace@{source_commit()[:10]}+{params_md5()[:8]}"


def params_dict() -> dict[str, Any]:
    import yaml

    path = Path("params.yaml")
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}


def key_name(key: str) -> str:
    """A metric/param/tag key MLflow accepts (``@`` and other characters become ``_``)."""
    return _BAD_KEY.sub("_", key)[:250]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def flat_params(mapping: dict[str, Any] | None) -> dict[str, str]:
    out = {}
    for key, value in flatten(_plain(mapping or {})).items():
        text = "null" if value is None else json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)
        out[key_name(key)] = text[:_MAX_PARAM]
    return out


def numeric_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten nested metrics and keep the numbers (MLflow metrics are floats)."""
    out = {}
    for key, value in flatten(metrics, prefix).items():
        if isinstance(value, (bool, int, float)) and not (isinstance(value, float) and math.isinf(value)):
            out[key_name(key)] = float(value)
    return out


@contextlib.contextmanager
def _store_lock() -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = cache_dir() / "mlflow.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _quiet() -> None:
    for name in ("mlflow", "alembic", "alembic.runtime.migration", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)


def connect(params: Params | None = None, tracking_uri: str | None = None):
    """Point MLflow at the project's store; returns ``(mlflow, experiment_id)``."""
    _quiet()
    import mlflow

    _quiet()
    uri = tracking_uri or (params.mlflow.tracking_uri if params else None) or default_tracking_uri()
    name = params.mlflow.experiment if params else "ift-select"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        # Artifacts beside the store, not in the cwd (a temporary copy under dvc exp run --temp/--queue).
        local = uri.startswith("sqlite:") and not (params and params.mlflow.tracking_uri)
        artifacts = (repo_root() / "mlartifacts").as_uri() if local else None
        try:
            return mlflow, mlflow.create_experiment(name, artifact_location=artifacts)
        except mlflow.exceptions.MlflowException:  # created meanwhile by another process
            experiment = mlflow.get_experiment_by_name(name)
    return mlflow, experiment.experiment_id


def parent_run_id(mlflow, experiment_id: str) -> str:
    """The experiment's parent run, created (with the flattened params.yaml) on first use."""
    key = experiment_key()
    found = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.`{EXP_TAG}` = '{key}' and tags.`{KIND_TAG}` = 'experiment'",
        max_results=1, output_format="list",
    )
    if found:
        return found[0].info.run_id
    from mlflow.entities import Param

    commit = source_commit()
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, run_name=key, tags={
        EXP_TAG: key, KIND_TAG: "experiment", "git_commit": commit, "mlflow.source.git.commit": commit,
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""), "params_md5": params_md5()})
    params = [Param(k, v) for k, v in flat_params(params_dict()).items()]
    client.log_batch(run.info.run_id, params=params)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def tracking_uri_for(given: str | None) -> str:
    """The store a command reads: ``given``, else params.yaml's ``mlflow.tracking_uri``, else mlflow.db at the
    repository root."""
    if given:
        return given
    if Path("params.yaml").exists():
        from ift_select.core.config import load_params
        from ift_select.core.errors import ConfigError

        try:
            configured = load_params().mlflow.tracking_uri
        except ConfigError:
            configured = None
        if configured:
            return configured
    return default_tracking_uri()
