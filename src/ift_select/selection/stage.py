"""Stages arms and select@<arm>.

arms:    every arm's effective settings (``selection.arms.resolve``) -> data/arms/<arm>.json. It reads the
         top-level knobs and sections, so each select@<arm> depends on its own file only and reruns exactly
         when its own settings change.
select:  data/arms/<arm>.json + pool (+ scores, embeddings) -> data/selected/<arm>.parquet, whose metadata
         records where its rows came from (pool, scores, embeddings and their DVC hashes: the lineage chain
         the train stage extends), and metrics/select_<arm>.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ift_select.core.errors import IftSelectError
from ift_select.core.io import parquet_record, read_parquet, write_json, write_parquet
from ift_select.core.params import Params
from ift_select.core.stage import Stage
from ift_select.selection.arms import describe, needs, resolve, select

ARMS = Path("data/arms")
POOL = Path("data/prepared/pool.parquet")
SCORES = Path("data/scores/scores.parquet")
EMBEDDINGS = Path("data/embeddings")


def spec_path(arm: str) -> Path:
    return ARMS / f"{arm}.json"


def read_spec(arm: str) -> dict[str, Any]:
    path = spec_path(arm)
    if not path.exists():
        raise IftSelectError(f"{path}: not found (the arms stage writes it: dvc repro arms)")
    return json.loads(path.read_text(encoding="utf-8"))


def arms(params: Params, key: str) -> dict[str, Any]:
    specs = {name: resolve(params, name) for name in params.arms}
    for name, spec in specs.items():
        write_json(spec_path(name), spec)
    return {"arms": {name: describe(spec) for name, spec in specs.items()}}


def _provenance(arm: str, spec: dict[str, Any], used: set[str], scores: Any) -> dict[str, Any]:
    from ift_select.provenance.dvcrepo import dvc_hash

    record: dict[str, Any] = {"arm": arm, "spec": spec, "rule": describe(spec),
                              "pool": {"path": POOL.as_posix(), "md5": dvc_hash(POOL), **parquet_record(POOL)}}
    if "scores" in used:
        scorer = str(scores["scorer"].iloc[0]) if "scorer" in scores and len(scores) else None
        record["scores"] = {"path": SCORES.as_posix(), "md5": dvc_hash(SCORES), "scorer": scorer,
                            **parquet_record(SCORES)}
    if "embeddings" in used:
        record["embeddings"] = {"path": EMBEDDINGS.as_posix(), "md5": dvc_hash(EMBEDDINGS)}
    return record


def select_stage(params: Params, key: str) -> dict[str, Any]:
    spec = read_spec(key)
    used = needs(spec)
    pool = read_parquet(POOL)
    scores = read_parquet(SCORES) if "scores" in used else None
    embeddings = None
    if "embeddings" in used:
        from ift_select.embedding.store import load_embeddings

        embeddings = load_embeddings(EMBEDDINGS)
    selected, info = select(spec, pool, scores, embeddings)
    write_parquet(Path(f"data/selected/{key}.parquet"), selected, record=_provenance(key, spec, used, scores))
    return {"arm": key, **info}


STAGES = {s.name: s for s in (Stage("arms", arms),
                              Stage("select", select_stage, keyed=True, logged=lambda key: {"arm": read_spec(key)}))}
