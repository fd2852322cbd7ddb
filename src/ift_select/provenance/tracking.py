"""MLflow tracking: one parent run per DVC experiment, one nested run per stage execution.

Where: ``params.mlflow.tracking_uri``, else ``sqlite:///<repository root>/mlflow.db`` with artifacts in
``<repository root>/mlartifacts`` -- the main repository also under ``dvc exp run --temp/--queue`` (their
copies live in ``.dvc/tmp/exps/``, see ``ift_select.core.paths.repo_root``). Writers take a file lock
(``.ift-cache/mlflow.lock``), so queued experiments running in parallel do not fight over SQLite.

What is recorded:

- **Parent run** (tag ``ift_select.kind = experiment``), found again by its tag ``ift_select.exp``: named
  after ``DVC_EXP_NAME`` (set by ``dvc exp run``, also with ``--temp``/``--queue``), else
  ``workspace@<commit[:10]>+<md5(params.yaml)[:8]>`` (a plain ``dvc repro``; editing params.yaml starts a new
  parent). Params: the whole params.yaml, flattened (``train.lr``, ``arms.car.p1``). Tags: ``git_commit``
  and ``mlflow.source.git.commit`` (the experiment's baseline commit, ``DVC_EXP_BASELINE_REV`` under
  ``dvc exp run``), ``dvc_exp_name``, ``params_md5``. The report stage (the last) adds: metrics from
  ``experiment_metrics`` (``selected.<arm>``, ``ws|wr|qs|consistency.<pair>.<test set>``,
  ``cost.score_usd``, ``cost.judge_usd``, ``cost.total_usd``, ``tokens.*``, ``seconds.<stage>``) plus the
  report's numbers; tags ``dvc.out.<path> = <md5>`` for every output in dvc.lock (written by DVC after each
  stage, so it holds every earlier stage); datasets pool, tests, scores and every selection; the report
  files as artifacts.
- **Nested run per stage** (``mlflow.parentRunId`` = the parent; run name = the DVC address, e.g.
  ``select@car``): params = the params.yaml keys the stage declares in dvc.yaml (flattened), plus what the
  stage script passes; metrics = the stage's metrics JSON, flattened, including ``seconds``; tags
  ``dvc.out.<path>`` = the hash of each of its outputs as DVC records it (``ift_select.provenance.dvcrepo.dvc_hash``);
  datasets = its data deps and outs (context ``input``/``output``; ``training`` for train's selection,
  ``evaluation`` for generate's tests), each with ``digest`` = the DVC md5; the train stage also logs
  ``lineage.json`` as an artifact and ``lineage.<link>.md5`` tags (``ift-select lineage --run-id``).

A stage that fails is recorded too (``log_failure``): a nested run with status FAILED and tag ``error`` = the
one-line cause the stage printed, and on the parent run status FAILED with tags ``ift_select.failed_stage``
and ``ift_select.error``; they are cleared when that stage later succeeds for the same experiment.

A tracking failure never fails a stage whose outputs are written: it is reported on stderr as one line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ift_select.core.config import flatten
from ift_select.core.params import Params
from ift_select.provenance.dvcrepo import StageSpec, dvc_hash, lock_outs, stage_spec, stages
from ift_select.provenance.experiment import experiment_metrics
from ift_select.provenance.mlflow_store import (EXP_TAG, KIND_TAG, _now_ms, _plain, _store_lock, connect,
                                                 experiment_key, flat_params, key_name, numeric_metrics,
                                                 params_dict, parent_run_id, source_commit)

LINEAGE_ARTIFACT = "lineage.json"
FAILED_STAGE_TAG, ERROR_TAG = "ift_select.failed_stage", "ift_select.error"
_NOT_DATA = ("stages/", "src/", "prompts/", "configs/", "metrics/", "models/", "reports/")
_DATA_SUFFIXES = {".parquet", ".json", ".jsonl", ".csv"}
_PREFIXES = {"selected": "selection", "generations": "generations", "judgments": "judgments", "tests": "tests"}


def declared_params(spec: StageSpec | None, raw: dict[str, Any]) -> dict[str, Any]:
    """The values of the params.yaml keys a stage declares (``tau``, ``judge.model``, ``select.alpagasus``)."""
    out: dict[str, Any] = {}
    for key in spec.params if spec else []:
        value: Any = raw
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out.update(flatten({key: value}) if isinstance(value, dict) else {key: value})
    return out


def is_dataset(path: str) -> bool:
    p = Path(path)
    if path.startswith(_NOT_DATA) or not p.exists():
        return False
    return p.is_dir() or p.suffix.lower() in _DATA_SUFFIXES


def dataset_name(path: str) -> str:
    """``pool``, ``scores``, ``tests`` (the directory), ``tests_<name>``, ``selection_<arm>``, ``generations_<arm>``,
    ``judgments_<pair>``."""
    p = Path(path)
    prefix = _PREFIXES.get(p.parent.name)
    if prefix:
        return f"{prefix}_{p.stem}"
    return p.stem if p.suffix == ".parquet" else p.name


def make_dataset(path: str, digest: str | None = None):
    """An MLflow dataset for ``path`` whose digest is the DVC md5 (Parquet: with schema and row count)."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.pandas_dataset import from_pandas

    digest = digest or dvc_hash(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "can be interpreted in multiple ways", integer-column hints
        source = resolve_dataset_source(Path(path).as_posix())
        if path.endswith(".parquet") and Path(path).is_file():
            try:
                import pandas as pd

                return from_pandas(pd.read_parquet(path), source=source, name=dataset_name(path), digest=digest)
            except Exception:  # noqa: BLE001 -- columns MLflow cannot type: fall back to the metadata only
                pass
        return MetaDataset(source, name=dataset_name(path), digest=digest)


def _context(stage: str, role: str) -> str:
    if role == "input" and stage.startswith("train"):
        return "training"
    if role == "input" and stage.startswith("generate"):
        return "evaluation"
    return role


def _log_datasets(mlflow, stage: str, paths: Iterable[tuple[str, str]]) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's schema-inference hints, once per integer column
        for path, role in paths:
            dataset = make_dataset(path)
            mlflow.log_input(dataset, context=_context(stage, role),
                             tags={"path": Path(path).as_posix(), "dvc_md5": dataset.digest})


def _log_lineage(mlflow, run_id: str, outs: Iterable[str]) -> None:
    client = mlflow.MlflowClient()
    for out in outs:
        record_path = Path(out) / LINEAGE_ARTIFACT
        if not record_path.is_file():
            continue
        record = json.loads(record_path.read_text(encoding="utf-8"))
        client.log_artifact(run_id, str(record_path))
        tags = {"lineage.arm": str(record.get("arm", "")), "lineage.model_dir": Path(out).as_posix()}
        for link in ("pool", "scores", "selection", "base_model"):
            if isinstance(record.get(link), dict) and record[link].get("md5"):
                tags[f"lineage.{link}.md5"] = record[link]["md5"]
        for name, value in tags.items():
            client.set_tag(run_id, name, value)


def log_stage(address: str, params: Params, metrics: dict[str, Any], artifacts: Iterable[str | Path] = (),
              experiment: bool = False, extra_params: dict[str, Any] | None = None) -> str | None:
    """Record one stage execution (DVC address ``select@car``) as a nested run; returns its run id (None when
    tracking failed, which is reported on stderr and never fails the stage). ``experiment``: the experiment's
    last stage (report) also records the experiment's figures, dvc.lock's output hashes, its datasets and
    ``artifacts`` on the parent run. ``extra_params``: logged beside the params the stage declares."""
    try:
        with _store_lock():
            return _log_stage(address, params, metrics, list(artifacts), experiment, extra_params or {})
    except Exception as exc:  # noqa: BLE001 -- the stage's outputs are written; say why the record is not
        _warn(address, exc)
        return None


def _warn(address: str, exc: Exception) -> None:
    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    print(f"warning: stage {address}: MLflow record not written ({type(exc).__name__}: {cause[:300]})",
          file=sys.stderr)


def log_failure(address: str, cause: str, params: Params | None = None) -> str | None:
    """Record that stage ``address`` failed with ``cause`` (see the module docstring); returns the nested
    run's id, None when tracking failed (reported on stderr)."""
    try:
        with _store_lock():
            mlflow, experiment_id = connect(params)
            parent = parent_run_id(mlflow, experiment_id)
            commit = source_commit()
            client = mlflow.MlflowClient()
            run = client.create_run(experiment_id, run_name=address, tags={
                EXP_TAG: experiment_key(), KIND_TAG: "stage", "stage": address, "error": cause[:5000],
                "git_commit": commit, "mlflow.parentRunId": parent,
                "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "")})
            client.set_terminated(run.info.run_id, status="FAILED")
            client.set_tag(parent, FAILED_STAGE_TAG, address)
            client.set_tag(parent, ERROR_TAG, f"{address}: {cause}"[:5000])
            client.set_terminated(parent, status="FAILED")
            return run.info.run_id
    except Exception as exc:  # noqa: BLE001 -- the stage has failed already; tracking must not hide why
        _warn(address, exc)
        return None


def _clear_failure(mlflow, parent: str, address: str) -> None:
    client = mlflow.MlflowClient()
    if client.get_run(parent).data.tags.get(FAILED_STAGE_TAG) == address:
        client.delete_tag(parent, FAILED_STAGE_TAG)
        client.delete_tag(parent, ERROR_TAG)
        client.set_terminated(parent, status="FINISHED")


def _log_stage(address: str, params: Params, metrics: dict[str, Any], artifacts: list[str | Path],
               experiment: bool, extra_params: dict[str, Any]) -> str:
    mlflow, experiment_id = connect(params)
    parent = parent_run_id(mlflow, experiment_id)
    spec = stage_spec(address)
    commit = source_commit()
    tags = {EXP_TAG: experiment_key(), KIND_TAG: "stage", "stage": address, "git_commit": commit,
            "mlflow.source.git.commit": commit, "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "")}
    outs = [o for o in (spec.outs if spec else []) if Path(o).exists()]
    own_outs = {out: dvc_hash(out) for out in outs}
    tags.update({key_name(f"dvc.out.{out}"): md5 for out, md5 in own_outs.items()})
    logged = declared_params(spec, params_dict())
    logged.update({k: v for k, v in flatten(_plain(extra_params)).items() if k not in logged})
    values = numeric_metrics(metrics)
    with mlflow.start_run(experiment_id=experiment_id, run_name=address, parent_run_id=parent, tags=tags) as run:
        from mlflow.entities import Metric, Param

        client = mlflow.MlflowClient()
        now = _now_ms()
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flat_params(logged).items()],
                         metrics=[Metric(k, v, now, 0) for k, v in values.items()])
        data = [(d, "input") for d in (spec.deps if spec else []) if is_dataset(d)]
        data += [(o, "output") for o in outs if is_dataset(o)]
        _log_datasets(mlflow, address, data)
        _log_lineage(mlflow, run.info.run_id, outs)
        for path in artifacts:
            if Path(path).exists():
                client.log_artifact(run.info.run_id, str(path))
        run_id = run.info.run_id
    _clear_failure(mlflow, parent, address)
    if experiment:
        _log_parent(mlflow, parent, address, params, values, own_outs, artifacts)
    return run_id


def _log_parent(mlflow, parent: str, address: str, params: Params, values: dict[str, float],
                own_outs: dict[str, str], artifacts: list[str | Path]) -> None:
    from mlflow.entities import Metric, RunTag

    client = mlflow.MlflowClient()
    now = _now_ms()
    merged = {**values, **experiment_metrics(params=params)}
    client.log_batch(parent, metrics=[Metric(k, v, now, 0) for k, v in merged.items()])
    # dvc.lock holds every earlier stage (DVC writes it after each one); this stage's entry there is stale.
    current = set(stages()) - {address}  # (a stage removed from dvc.yaml may linger in dvc.lock)
    hashes = {path: md5 for stage, outs in lock_outs().items() if stage in current for path, md5 in outs.items()}
    hashes.update(own_outs)
    client.log_batch(parent, tags=[RunTag(key_name(f"dvc.out.{p}"), m) for p, m in sorted(hashes.items()) if m])
    data = [p for p in hashes if is_dataset(p) and (dataset_name(p) in ("pool", "scores")
                                                    or dataset_name(p).startswith(("selection_", "tests_")))]
    with mlflow.start_run(run_id=parent):
        _log_datasets(mlflow, "experiment", [(p, "input") for p in data])
        for path in artifacts:
            if Path(path).exists():
                mlflow.log_artifact(str(path))
