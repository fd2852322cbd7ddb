"""Selection arms: alpagasus (score >= tau), random (same size, seeded), full (every row).

The car arm lives in ``ift_select.car``; this module dispatches to it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ift_select.config import Params
from ift_select.errors import ConfigError, IftSelectError

SCORE_COLUMNS = ("score", "status")


def _scored(pool: pd.DataFrame, scores: pd.DataFrame, column: str) -> pd.DataFrame:
    if column not in scores.columns:
        raise ConfigError(f"select.alpagasus.column: {column!r} is not a column of the scores "
                          f"({', '.join(c for c in scores.columns if c.startswith('score'))})")
    missing = set(pool["id"]) - set(scores["id"])
    if missing:
        raise IftSelectError(f"data/scores/scores.parquet has no score for {len(missing)} pool rows "
                             f"(e.g. id {sorted(missing)[0]}): rerun the score stage")
    quality = scores.set_index("id")[column].rename("quality")
    return pool.join(quality, on="id")


def select_alpagasus(pool: pd.DataFrame, scores: pd.DataFrame, tau: float, column: str = "score") -> pd.DataFrame:
    """Rows whose grader score is >= tau. Unparsed/errored rows (NaN) are never kept."""
    scored = _scored(pool, scores, column)
    kept = scored[scored["quality"] >= tau]
    if kept.empty:
        best = scored["quality"].max()
        raise ConfigError(
            f"tau = {tau} selects no rows (highest score {best:.3f} of {len(scored)}); lower tau in params.yaml"
        )
    return kept.reset_index(drop=True)


def select_random(pool: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A seeded uniform sample of ``size`` rows, kept in pool order."""
    if not 0 < size <= len(pool):
        raise ConfigError(f"random: size {size} is outside 1..{len(pool)} (pool rows)")
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(pool), size=size, replace=False))
    return pool.iloc[picked].reset_index(drop=True)


def select_arm(
    arm: str,
    params: Params,
    pool: pd.DataFrame,
    scores: pd.DataFrame | None,
    embeddings: tuple[np.ndarray, list[str]] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Dispatch by arm name; returns the selection and its metrics."""
    info: dict = {"arm": arm, "pool_rows": len(pool)}
    if arm == "full":
        selected = pool.reset_index(drop=True)
    elif arm == "alpagasus":
        assert scores is not None
        selected = select_alpagasus(pool, scores, params.tau, params.select.alpagasus.column)
        info.update(tau=params.tau, column=params.select.alpagasus.column)
    elif arm == "random":
        assert scores is not None
        if params.random.match != "alpagasus":
            raise ConfigError(f"random.match: only 'alpagasus' is supported, got {params.random.match!r}")
        size = len(select_alpagasus(pool, scores, params.tau, params.select.alpagasus.column))
        selected = select_random(pool, size, params.seed)
        info.update(matched=params.random.match, seed=params.seed)
    elif arm == "car":
        from ift_select import car

        assert scores is not None and embeddings is not None
        quality = car_quality(scores, params)
        vectors, ids = embeddings
        selected, car_info = car.select_car(pool, quality, vectors, ids, params.n1, params.n2, params.car,
                                            params.seed)
        info.update(car_info)
    else:
        raise ConfigError(f"arms: no selection method for arm {arm!r} (known: alpagasus, car, random, full)")
    info["selected"] = len(selected)
    info["fraction"] = round(len(selected) / max(len(pool), 1), 4)
    return selected, info


def car_quality(scores: pd.DataFrame, params: Params) -> pd.Series:
    column = "iqs" if params.car.scorer == "iqs" else "score"
    if column not in scores.columns:
        raise ConfigError(f"car.scorer: {params.car.scorer!r} needs a {column!r} column in the scores; "
                          "set score.iqs_model so the score stage adds it")
    return scores.set_index("id")[column]
