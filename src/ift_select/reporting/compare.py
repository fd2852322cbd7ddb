"""Compare experiments from the MLflow store: WS with its bootstrap interval against a param (AlpaGasus'
threshold ablation: WS against tau), one point per DVC experiment.

Each experiment's parent run (``ift_select.kind = experiment``) carries the flattened params.yaml as params
and the report stage's figures as metrics (``judge.<pair>.<test set>.ws``, ``.ws_ci_low``, ``.ws_ci_high``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from ift_select.core.errors import IftSelectError


@dataclass(frozen=True)
class Point:
    experiment: str
    value: float | str
    ws: float
    ws_low: float | None
    ws_high: float | None
    run_id: str


def _number(text: str | None) -> float | str | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def experiment_runs(tracking_uri: str, experiment: str = "ift-select") -> list[Any]:
    """Every experiment's parent run (latest first)."""
    from ift_select.provenance.mlflow_store import KIND_TAG, _quiet

    _quiet()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise IftSelectError(f"MLflow experiment {experiment!r} not found in {tracking_uri} (run dvc repro first)")
    return mlflow.search_runs(experiment_names=[experiment], filter_string=f"tags.`{KIND_TAG}` = 'experiment'",
                              order_by=["attributes.start_time DESC"], output_format="list")


def pairs_of(runs: list[Any]) -> list[tuple[str, str]]:
    """(pair, test set) combinations some run has a WS for, most common first."""
    found: dict[tuple[str, str], int] = {}
    for run in runs:
        for key in run.data.metrics:
            parts = key.split(".")
            if len(parts) == 4 and parts[0] == "judge" and parts[3] == "ws":
                found[(parts[1], parts[2])] = found.get((parts[1], parts[2]), 0) + 1
    return sorted(found, key=lambda k: (-found[k], k))


def points(runs: list[Any], param: str, pair: str, test_set: str) -> list[Point]:
    """One point per experiment that has both ``param`` and the pair's WS; the latest run of each name."""
    seen, out = set(), []
    prefix = f"judge.{pair}.{test_set}"
    for run in runs:
        name = run.info.run_name
        ws = run.data.metrics.get(f"{prefix}.ws")
        value = _number(run.data.params.get(param))
        if name in seen or ws is None or value is None:
            continue
        seen.add(name)
        low, high = (run.data.metrics.get(f"{prefix}.ws_ci_{side}") for side in ("low", "high"))
        out.append(Point(name, value, float(ws), low, high, run.info.run_id))
    return sorted(out, key=lambda p: (isinstance(p.value, str), p.value if not isinstance(p.value, str) else 0,
                                      str(p.value), p.experiment))


def frame(found: list[Point]) -> pd.DataFrame:
    return pd.DataFrame([asdict(p) for p in found], columns=[f for f in Point.__dataclass_fields__])


def ws_figure(found: list[Point], param: str, pair: str, test_set: str) -> bytes:
    from ift_select.reporting.plots import ws_against_param

    return ws_against_param(frame(found), param, f"WS of {pair} on {test_set} against {param}")


def table(found: list[Point], param: str) -> list[list[Any]]:
    def fmt(x: float | None) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    return [[p.experiment, p.value, fmt(p.ws), f"[{fmt(p.ws_low)}, {fmt(p.ws_high)}]"] for p in found]
