"""Stages prepare (the pool) and testset@<name> (one public test set each).

prepare:  data.pool -> data/prepared/pool.parquet (the pool contract; its metadata records the source file and
          its md5) and metrics/prepare.json (kept, duplicate and skipped counts).
testset:  data.test_sets.<name>.path -> data/prepared/tests/<name>.parquet and metrics/testset_<name>.json.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ift_select.core.errors import ConfigError
from ift_select.core.io import write_parquet
from ift_select.core.params import Params
from ift_select.core.stage import Stage
from ift_select.data.pool import load_pool
from ift_select.data.prepared import POOL, test_set_path
from ift_select.data.summary import summary_line
from ift_select.data.testsets import load_test_set



def prepare(params: Params, key: str) -> dict[str, Any]:
    from ift_select.provenance.dvcrepo import dvc_hash

    d = params.data
    pool, report = load_pool(d.pool, format=d.format, field_map=d.field_map, on_invalid=d.on_invalid,
                             max_rows=d.max_rows)
    source = {"source": d.pool, "source_md5": dvc_hash(d.pool) if Path(d.pool).exists() else None}
    write_parquet(POOL, pool, record=source)
    print(summary_line("prepare", f"pool {d.pool}", report, "metrics/prepare.json"), file=sys.stderr)
    return {"pool": report.to_dict(), "pool_rows": len(pool)}


def testset(params: Params, key: str) -> dict[str, Any]:
    sets = params.data.test_sets
    if key not in sets:
        raise ConfigError(f"data.test_sets: no test set named {key!r} (known: {', '.join(sets)})")
    spec = sets[key]
    frame, report = load_test_set(spec.path, key, format=spec.format, on_invalid=params.data.on_invalid)
    write_parquet(test_set_path(key), frame, record={"source": spec.path})
    print(summary_line("testset", f"test set {key}", report, f"metrics/testset_{key}.json"), file=sys.stderr)
    return {"test_set": key, "items": len(frame), "report": report.to_dict()}


STAGES = {s.name: s for s in (Stage("prepare", prepare), Stage("testset", testset, keyed=True))}
