"""What the report reads: the input paths (each optional) and readers that name a missing file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.core.params import Params


@dataclass
class ReportInputs:
    """Paths the report reads (each optional). ``selections``: arm -> selection parquet; ``judgments``: pair
    name -> judgments parquet; ``metrics``: stage name -> metrics JSON (metrics/*.json); ``qualify``: the
    qualify_judge stage's metrics/qualify.json; ``agreement``: the JSON written by ``ift-select judge agreement
    --out`` (shown when qualify holds no human-labelled set)."""

    params: Params
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm -> resolved settings (data/arms/*.json)
    scores: Path | None = None
    pool: Path | None = None
    selections: dict[str, Path] = field(default_factory=dict)
    judgments: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Path] = field(default_factory=dict)
    agreement: Path | None = None
    qualify: Path | None = None
    embeddings: Path | None = None  # the embed stage's directory: cluster coverage per arm


def read_frame(path: Path | None, missing: list[str]) -> pd.DataFrame | None:
    if path is None:
        return None
    if not Path(path).exists():
        missing.append(str(path))
        return None
    return pd.read_parquet(path)


def read_json(path: Path | None, missing: list[str]) -> dict[str, Any] | None:
    if path is None:
        return None
    if not Path(path).exists():
        missing.append(str(path))
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))
