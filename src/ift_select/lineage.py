"""lineage.json: which pool, scores, selection, base model and recipe produced a trained model.

Every file in the chain is recorded with its md5 (DVC's file hash), so ``verify`` can tell when any of them
no longer matches what trained the model.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.config import Params
from ift_select.errors import IftSelectError
from ift_select.io import md5_file, md5_path
from ift_select.tracking import git_commit

POOL = Path("data/prepared/pool.parquet")
SCORES = Path("data/scores/scores.parquet")
BASE = Path("models/base")
FILE_KEYS = ("pool", "scores", "selection", "base_model")


def _file_record(path: Path, **extra: Any) -> dict[str, Any]:
    return {"path": path.as_posix(), "md5": md5_path(path), **extra}


def build(arm: str, params: Params, selection_path: Path, train_metrics: dict[str, Any]) -> dict[str, Any]:
    selection = pd.read_parquet(selection_path, columns=["id"])
    record: dict[str, Any] = {
        "arm": arm,
        "pool": _file_record(POOL, rows=len(pd.read_parquet(POOL, columns=["id"])), source=params.data.pool,
                             source_md5=md5_file(params.data.pool) if Path(params.data.pool).is_file() else None),
        "selection": _file_record(selection_path, rows=len(selection), arm=arm, tau=params.tau, n1=params.n1,
                                  n2=params.n2, seed=params.seed,
                                  method={"alpagasus": f"score >= {params.tau}",
                                          "car": f"top {params.n1} + top {params.n2} per cluster",
                                          "random": f"random, size of alpagasus, seed {params.seed}",
                                          "full": "every row"}.get(arm, arm)),
        "base_model": _file_record(BASE, **_base_source()),
        "train": dataclasses.asdict(params.train),
        "train_metrics": {k: train_metrics.get(k) for k in ("rows", "steps", "final_loss", "effective_batch")},
        "git_commit": git_commit(),
    }
    if SCORES.exists() and arm != "full":
        scores = pd.read_parquet(SCORES, columns=["scorer"])
        record["scores"] = _file_record(SCORES, scorer=str(scores["scorer"].iloc[0]) if len(scores) else None,
                                        grader_model=params.score.model, prompt=params.score.prompt,
                                        prompt_md5=md5_file(params.score.prompt)
                                        if Path(params.score.prompt).is_file() else None)
    return record


def _base_source() -> dict[str, Any]:
    source = BASE / "source.json"
    return json.loads(source.read_text()) if source.exists() else {}


def load(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / "lineage.json"
    if not path.exists():
        raise IftSelectError(f"{path}: no lineage record (was this model written by the train stage?)")
    return json.loads(path.read_text())


def verify(record: dict[str, Any], root: Path = Path(".")) -> list[str]:
    """Mismatches, in chain order: 'scores: data/scores/scores.parquet md5 abc != recorded def'."""
    problems = []
    for key in FILE_KEYS:
        entry = record.get(key)
        if not entry:
            continue
        path = root / entry["path"]
        if not path.exists():
            problems.append(f"{key}: {entry['path']} is missing")
            continue
        actual = md5_path(path)
        if actual != entry["md5"]:
            problems.append(f"{key}: {entry['path']} md5 {actual} != recorded {entry['md5']}")
    return problems


def describe(record: dict[str, Any]) -> str:
    """The chain pool -> scores -> selection -> model, one line per link."""
    lines = [f"model {record['arm']} (git {str(record.get('git_commit', ''))[:10]})"]
    pool = record["pool"]
    lines.append(f"  pool       {pool['path']} md5 {pool['md5']} rows {pool['rows']} from {pool.get('source')}")
    if "scores" in record:
        sc = record["scores"]
        lines.append(f"  scores     {sc['path']} md5 {sc['md5']} scorer {sc.get('scorer')}")
    sel = record["selection"]
    lines.append(f"  selection  {sel['path']} md5 {sel['md5']} rows {sel['rows']} ({sel.get('method')}; "
                 f"tau={sel.get('tau')} n1={sel.get('n1')} n2={sel.get('n2')} seed={sel.get('seed')})")
    base = record["base_model"]
    lines.append(f"  base model {base.get('spec')} ({base.get('kind')}, source {base.get('source_hash')}) "
                 f"-> {base['path']} md5 {base['md5']}")
    tr = record.get("train", {})
    lines.append(f"  train      epochs={tr.get('epochs')} lr={tr.get('lr')} batch={tr.get('batch_size')} "
                 f"accum={tr.get('grad_accum')} max_length={tr.get('max_length')} lora={tr.get('lora', {}).get('enabled')}")
    return "\n".join(lines)
