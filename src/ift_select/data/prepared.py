"""Reading what the prepare and testset stages wrote (later stages need only this module of ``data``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ift_select.core.errors import IftSelectError
from ift_select.core.params import Params

POOL = Path("data/prepared/pool.parquet")
TESTS = Path("data/prepared/tests")


def test_set_path(name: str) -> Path:
    return TESTS / f"{name}.parquet"


def test_items(params: Params) -> pd.DataFrame:
    """The items of every configured test set (``data.test_sets``), in params order."""
    frames = []
    for name in params.data.test_sets:
        path = test_set_path(name)
        if not path.exists():
            raise IftSelectError(f"{path}: not found (the testset stage writes it: dvc repro testset@{name})")
        frames.append(pd.read_parquet(path))
    if not frames:
        raise IftSelectError("data.test_sets: no test set configured, nothing to answer")
    return pd.concat(frames, ignore_index=True)
