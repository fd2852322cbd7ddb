"""lineage.json: which pool, scores, selection, base model and recipe produced a trained model.

Every file in the chain is recorded with the hash DVC records for it in dvc.lock (``dvcrepo.dvc_hash``: md5 of
a file, ``<md5>.dir`` of a directory), so ``verify`` can tell when any of them no longer matches what trained
the model, and the hashes can be compared with dvc.lock and with the MLflow datasets' digests. The upstream
links (pool and its source, scores and their grader, the arm's resolved settings) come from the record the
select stage stores in the selection's Parquet metadata, so training reads nothing but its own inputs. The
train stage logs the record to MLflow too (artifact ``lineage.json`` of its run, plus tags
``lineage.<link>.md5``), so the chain can also be read from a run id: ``load_from_run``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ift_select.core.errors import IftSelectError
from ift_select.core.io import parquet_record, read_parquet
from ift_select.core.params import Params
from ift_select.provenance.dvcrepo import dvc_hash
from ift_select.provenance.mlflow_store import EXP_TAG, KIND_TAG, source_commit
from ift_select.provenance.tracking import LINEAGE_ARTIFACT

BASE = Path("models/base")
# Chain order: the first mismatch `verify` reports is the earliest broken link.
CHECKS = (("pool source", "pool", "source", "source_md5"), ("pool", "pool", "path", "md5"),
          ("grader prompt", "scores", "prompt", "prompt_md5"), ("scores", "scores", "path", "md5"), ("selection", "selection", "path", "md5"),
          ("base model", "base_model", "path", "md5"))


def build(arm: str, params: Params, selection_path: Path, train_metrics: dict[str, Any]) -> dict[str, Any]:
    upstream = parquet_record(selection_path)
    spec = upstream.get("spec") or {}
    rows = len(read_parquet(selection_path)[["id"]])
    record: dict[str, Any] = {
        "arm": arm,
        "pool": upstream.get("pool"),
        "selection": {"path": selection_path.as_posix(), "md5": dvc_hash(selection_path), "rows": rows,
                      "method": upstream.get("rule", spec.get("method")), "spec": spec},
        "base_model": {"path": BASE.as_posix(), "md5": dvc_hash(BASE), "spec": params.base_model,
                       **_base_source()},
        "train": dataclasses.asdict(params.train),
        "train_metrics": {k: train_metrics.get(k) for k in ("rows", "steps", "final_loss", "effective_batch")},
        "git_commit": source_commit(),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME") or None,
    }
    for link in ("scores", "embeddings"):
        if upstream.get(link):
            record[link] = upstream[link]
    return record


def _base_source() -> dict[str, Any]:
    source = BASE / "source.json"
    return json.loads(source.read_text()) if source.exists() else {}


def load(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / "lineage.json"
    if not path.exists():
        raise IftSelectError(f"{path}: no lineage record (was this model written by the train stage?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IftSelectError(f"{path}: not a lineage record ({exc})") from None


def load_from_run(run_id: str, tracking_uri: str) -> list[tuple[str, dict[str, Any]]]:
    """The lineage records of MLflow run ``run_id``: a train stage's run gives its own; an experiment's
    parent run gives those of every train run nested under it. Returns ``[(run label, record)]``."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file: no bar
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise IftSelectError(f"MLflow run {run_id}: not found in {tracking_uri} "
                             f"({str(exc).splitlines()[0]})") from None
    runs = [run]
    if run.data.tags.get(KIND_TAG) == "experiment":
        runs = mlflow.search_runs(experiment_ids=[run.info.experiment_id], output_format="list",
                                  filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")
        runs = sorted((r for r in runs if "lineage.arm" in r.data.tags), key=lambda r: r.data.tags["lineage.arm"])
        if not runs:
            raise IftSelectError(f"MLflow run {run_id} ({run.info.run_name}): no train stage ran in this "
                                 "experiment, so it has no lineage (see the experiment it was derived from)")
    records = []
    for r in runs:
        if "lineage.arm" not in r.data.tags:
            raise IftSelectError(f"MLflow run {r.info.run_id} ({r.info.run_name}): no lineage record "
                                 "(only train stage runs and experiment runs have one)")
        with tempfile.TemporaryDirectory(prefix="ift-lineage-") as tmp:
            try:
                local = client.download_artifacts(r.info.run_id, LINEAGE_ARTIFACT, tmp)
                record = json.loads(Path(local).read_text(encoding="utf-8"))
            except (MlflowException, OSError, ValueError) as exc:
                raise IftSelectError(f"MLflow run {r.info.run_id}: cannot read artifact {LINEAGE_ARTIFACT} "
                                     f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        label = f"run {r.info.run_id} ({r.info.run_name}, experiment {r.data.tags.get(EXP_TAG, '?')})"
        records.append((label, record))
    return records


def verify(record: dict[str, Any], root: Path = Path(".")) -> list[str]:
    """Mismatches, in chain order: 'scores: data/scores/scores.parquet md5 abc != recorded def'."""
    problems = []
    for label, key, path_field, hash_field in CHECKS:
        entry = record.get(key)
        if not isinstance(entry, dict) or not entry.get(hash_field) or not entry.get(path_field):
            continue
        shown = entry[path_field]
        path = Path(shown) if Path(shown).is_absolute() else root / shown
        if not path.exists():
            problems.append(f"{label}: {shown} is missing (recorded md5 {entry[hash_field]})")
            continue
        actual = dvc_hash(path)
        if actual != entry[hash_field]:
            problems.append(f"{label}: {shown} md5 {actual} != recorded {entry[hash_field]}")
    return problems


def describe(record: dict[str, Any]) -> str:
    """The chain pool -> scores -> selection -> model, one line per link."""
    exp = f", experiment {record['dvc_exp_name']}" if record.get("dvc_exp_name") else ""
    lines = [f"model {record.get('arm')} (git {str(record.get('git_commit', ''))[:10]}{exp})"]
    pool = record.get("pool") or {}
    lines.append(f"  pool       {pool.get('path')} md5 {pool.get('md5')} from {pool.get('source')} "
                 f"(md5 {pool.get('source_md5')})")
    if record.get("scores"):
        sc = record["scores"]
        lines.append(f"  scores     {sc.get('path')} md5 {sc.get('md5')} grader {sc.get('grader')} prompt "
                     f"{sc.get('prompt')} (md5 {sc.get('prompt_md5')}) scorer {sc.get('scorer')}")
    if record.get("embeddings"):
        lines.append(f"  embeddings {record['embeddings'].get('path')} md5 {record['embeddings'].get('md5')}")
    sel = record.get("selection") or {}
    lines.append(f"  selection  {sel.get('path')} md5 {sel.get('md5')} rows {sel.get('rows')} ({sel.get('method')}; "
                 + " ".join(f"{k}={v}" for k, v in (sel.get("spec") or {}).items() if k != "method") + ")")
    base = record.get("base_model") or {}
    lines.append(f"  base model {base.get('spec')} ({base.get('kind')}, source {base.get('source_hash')}) "
                 f"-> {base.get('path')} md5 {base.get('md5')}")
    tr = record.get("train") or {}
    lines.append(f"  train      epochs={tr.get('epochs')} lr={tr.get('lr')} batch={tr.get('batch_size')} "
                 f"accum={tr.get('grad_accum')} max_length={tr.get('max_length')} seed={tr.get('seed')} "
                 f"lora={(tr.get('lora') or {}).get('enabled')}")
    tm = record.get("train_metrics") or {}
    if tm:
        lines.append(f"  trained    rows={tm.get('rows')} steps={tm.get('steps')} final_loss={tm.get('final_loss')}")
    return "\n".join(lines)
