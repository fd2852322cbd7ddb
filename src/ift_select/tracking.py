"""MLflow tracking: one parent run per DVC experiment, one nested run per stage execution.

Where: ``params.mlflow.tracking_uri``, else ``sqlite:///<repository root>/mlflow.db`` with artifacts in
``<repository root>/mlartifacts`` -- the main repository also under ``dvc exp run --temp/--queue`` (their
copies live in ``.dvc/tmp/exps/``, see ``ift_select.paths.repo_root``). Writers take a file lock
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
  ``dvc.out.<path>`` = the hash of each of its outputs as DVC records it (``ift_select.dvcinfo.dvc_hash``);
  datasets = its data deps and outs (context ``input``/``output``; ``training`` for train's selection,
  ``evaluation`` for generate's tests), each with ``digest`` = the DVC md5; the train stage also logs
  ``lineage.json`` as an artifact and ``lineage.<link>.md5`` tags (``ift-select lineage --run-id``).

A tracking failure never fails a stage whose outputs are written: it is reported on stderr as one line.
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
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ift_select.config import Params, flatten
from ift_select.dvcinfo import StageSpec, current_address, dvc_hash, lock_outs, stage_names, stage_spec
from ift_select.paths import cache_dir, default_tracking_uri, repo_root

EXP_TAG = "ift_select.exp"
KIND_TAG = "ift_select.kind"
LINEAGE_ARTIFACT = "lineage.json"
_MAX_PARAM = 6000
_BAD_KEY = re.compile(r"[^\w./\- :]")
_NOT_DATA = ("stages/", "src/", "prompts/", "configs/", "metrics/", "models/", "reports/")
_DATA_SUFFIXES = {".parquet", ".json", ".jsonl", ".csv"}
_PREFIXES = {"selected": "selection", "generations": "generations", "judgments": "judgments"}


# --- identity of the experiment ----------------------------------------------------------------------------

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


# --- names and values MLflow accepts -----------------------------------------------------------------------

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


def declared_params(spec: StageSpec | None, raw: dict[str, Any]) -> dict[str, Any]:
    """The values of the params.yaml keys a stage declares (``tau``, ``judge.model``, ``select.alpagasus``)."""
    out: dict[str, Any] = {}
    for key in spec.params if spec else []:
        value: Any = raw
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out.update(flatten({key: value}) if isinstance(value, dict) else {key: value})
    return out


# --- what the whole experiment produced ----------------------------------------------------------------------

def configured_stages(params: Params) -> set[str]:
    """The metrics-file stems of the stages ``params`` configures (a removed arm's old files are not)."""
    stems = {"prepare", "score", "embed", "base_model", "report"}
    for arm in params.arms:
        stems |= {f"select_{arm}", f"train_{arm}", f"generate_{arm}"}
    return stems | {f"judge_{pair}" for pair in params.judge.pairs}


def experiment_metrics(metrics_dir: str | Path = "metrics", params: Params | None = None) -> dict[str, float]:
    """The figures experiments are compared on, from the stages' metrics files: ``selected.<arm>``,
    ``ws|wr|qs|consistency.<pair>.<test set>``, ``cost.{score,judge,total}_usd``,
    ``tokens.{score,judge}_{in,out}``, ``requests.*``, ``cache_hits.*``, ``pool.*``, ``seconds.<stage>``.
    With ``params``, only the files of the stages it configures count."""
    out: dict[str, float] = {}
    totals = {"cost.score_usd": 0.0, "cost.judge_usd": 0.0}
    keep = configured_stages(params) if params is not None and params.arms else None
    for path in sorted(Path(metrics_dir).glob("*.json")):
        if keep is not None and path.stem not in keep:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        stage = path.stem
        if isinstance(data.get("seconds"), (int, float)):
            out[f"seconds.{stage}"] = float(data["seconds"])
        if stage == "prepare":
            pool = data.get("pool") or {}
            for key in ("duplicates", "skipped"):
                if isinstance(pool.get(key), (int, float)):
                    out[f"pool.{key}"] = float(pool[key])
            if isinstance(data.get("pool_rows"), (int, float)):
                out["pool.rows"] = float(data["pool_rows"])
        elif stage.startswith("select_") and isinstance(data.get("selected"), (int, float)):
            out[f"selected.{stage[len('select_'):]}"] = float(data["selected"])
        elif stage == "score" or stage.startswith("judge_"):
            kind = "score" if stage == "score" else "judge"
            totals[f"cost.{kind}_usd"] += float(data.get("cost_usd") or 0.0)
            for src, dst in (("tokens_in", f"tokens.{kind}_in"), ("tokens_out", f"tokens.{kind}_out"),
                             ("requests", f"requests.{kind}"), ("cache_hits", f"cache_hits.{kind}")):
                out[dst] = out.get(dst, 0.0) + float(data.get(src) or 0)
            if kind == "judge":
                pair = data.get("pair") or stage[len("judge_"):]
                for test_set, figures in (data.get("by_test_set") or {}).items():
                    for name in ("ws", "wr", "qs", "consistency"):
                        value = (figures or {}).get(name)
                        if isinstance(value, (int, float)) and not isinstance(value, bool):
                            out[key_name(f"{name}.{pair}.{test_set}")] = float(value)
    out.update({k: round(v, 6) for k, v in totals.items()})
    out["cost.total_usd"] = round(totals["cost.score_usd"] + totals["cost.judge_usd"], 6)
    return out


# --- datasets ----------------------------------------------------------------------------------------------

def is_dataset(path: str) -> bool:
    p = Path(path)
    if path.startswith(_NOT_DATA) or not p.exists():
        return False
    return p.is_dir() or p.suffix.lower() in _DATA_SUFFIXES


def dataset_name(path: str) -> str:
    """``pool``, ``scores``, ``tests``, ``selection_<arm>``, ``generations_<arm>``, ``judgments_<pair>``."""
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


# --- the store ---------------------------------------------------------------------------------------------

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


def log_stage(
    stage: str,
    params: Params,
    metrics: dict[str, Any],
    stage_params: dict[str, Any] | None = None,
    artifacts: Iterable[str | Path] = (),
    parent_metrics: bool = False,
) -> str | None:
    """Record one stage execution as a nested run; returns its run id (None when tracking failed, which
    is reported on stderr and never fails the stage).
    ``parent_metrics``: the experiment's last stage (report): also record the experiment's figures,
    dvc.lock's output hashes, its datasets and ``artifacts`` on the parent run."""
    try:
        with _store_lock():
            return _log_stage(stage, params, metrics, stage_params, list(artifacts), parent_metrics)
    except Exception as exc:  # noqa: BLE001 -- the stage's outputs are written; say why the record is not
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"warning: stage {stage}: MLflow record not written ({type(exc).__name__}: {cause[:300]})",
              file=sys.stderr)
        return None


def _log_stage(stage: str, params: Params, metrics: dict[str, Any], stage_params: dict[str, Any] | None,
               artifacts: list[str | Path], parent_metrics: bool) -> str:
    mlflow, experiment_id = connect(params)
    parent = parent_run_id(mlflow, experiment_id)
    address = current_address(stage)
    spec = stage_spec(address)
    commit = source_commit()
    tags = {EXP_TAG: experiment_key(), KIND_TAG: "stage", "stage": address, "git_commit": commit,
            "mlflow.source.git.commit": commit, "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "")}
    outs = [o for o in (spec.outs if spec else []) if Path(o).exists()]
    own_outs = {out: dvc_hash(out) for out in outs}
    tags.update({key_name(f"dvc.out.{out}"): md5 for out, md5 in own_outs.items()})
    logged = declared_params(spec, params_dict())
    extra = flatten(_plain(stage_params or {}))
    logged.update({k: v for k, v in extra.items() if k not in logged})
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
    if parent_metrics:
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
    current = set(stage_names()) - {address}  # (a stage removed from dvc.yaml may linger in dvc.lock)
    hashes = {path: md5 for stage, outs in lock_outs().items() if stage in current for path, md5 in outs.items()}
    hashes.update(own_outs)
    client.log_batch(parent, tags=[RunTag(key_name(f"dvc.out.{p}"), m) for p, m in sorted(hashes.items()) if m])
    data = [p for p in hashes if is_dataset(p) and (dataset_name(p) in ("pool", "scores", "tests")
                                                    or dataset_name(p).startswith("selection_"))]
    with mlflow.start_run(run_id=parent):
        _log_datasets(mlflow, "experiment", [(p, "input") for p in data])
        for path in artifacts:
            if Path(path).exists():
                mlflow.log_artifact(str(path))


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
