"""Stage prepare: load, validate and de-duplicate the pool and the test sets.

    python stages/prepare.py      (dvc repro prepare)
Writes data/prepared/pool.parquet, data/prepared/tests/<name>.parquet, metrics/prepare.json, and one line
on stderr: kept, duplicate and skipped counts of the pool and of each test set.
"""

import sys
from pathlib import Path

from ift_select import stage
from ift_select.config import Params
from ift_select.data import load_pool, load_test_set, summary_line
from ift_select.io import atomic_dir, atomic_path

OUT = Path("data/prepared")


def main(params: Params) -> dict:
    d = params.data
    pool, report = load_pool(d.pool, format=d.format, field_map=d.field_map, on_invalid=d.on_invalid,
                             max_rows=d.max_rows)
    tests = {name: load_test_set(spec.path, name, format=spec.format, on_invalid=d.on_invalid)
             for name, spec in d.test_sets.items()}
    # Both outputs are written in full under temporary names, then swapped in, so a failure leaves the
    # previous outputs as they were. The test sets are one directory so that a removed test set disappears too.
    with atomic_path(OUT / "pool.parquet", suffix=".parquet") as pool_tmp, atomic_dir(OUT / "tests") as tests_tmp:
        pool.to_parquet(pool_tmp, index=False)
        for name, (frame, _) in tests.items():
            frame.to_parquet(tests_tmp / f"{name}.parquet", index=False)
    print(summary_line(report, {name: rep for name, (_, rep) in tests.items()}), file=sys.stderr)
    return {"pool": report.to_dict(), "tests": {name: rep.to_dict() for name, (_, rep) in tests.items()},
            "pool_rows": len(pool), "test_items": sum(len(f) for f, _ in tests.values())}


if __name__ == "__main__":
    stage.run("prepare", main, stage_params=lambda p: {"data": p.data.__dict__})
