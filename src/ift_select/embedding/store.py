"""The embed stage's output format: ``pool.npy`` (float32, one row per pool row) and ``ids.json`` (the row ids in
the same order). Readers (select@car, the report) need only this module, not the encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ift_select.core.errors import DataError

EMBEDDINGS_FILE = "pool.npy"
IDS_FILE = "ids.json"


def load_embeddings(out_dir: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read what :func:`embed_pool` wrote: (embeddings, ids)."""
    out_dir = Path(out_dir)
    for name in (EMBEDDINGS_FILE, IDS_FILE):
        if not (out_dir / name).exists():
            raise DataError(f"{out_dir / name}: not found (run the embed stage: dvc repro embed)")
    vectors = np.load(out_dir / EMBEDDINGS_FILE)
    ids = json.loads((out_dir / IDS_FILE).read_text(encoding="utf-8"))
    if len(ids) != len(vectors):
        raise DataError(f"{out_dir}: {IDS_FILE} has {len(ids)} ids but {EMBEDDINGS_FILE} has {len(vectors)} rows")
    return vectors, [str(i) for i in ids]
