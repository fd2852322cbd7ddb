"""Arms as data: resolve an arm's settings from params, then select its rows by its ``method``.

``resolve(params, name)`` is everything the arm's selection depends on, with the defaults filled in: the
top-level ``tau`` / ``n1`` / ``n2`` / ``seed`` and the ``select`` / ``car`` sections. The ``arms`` stage writes
it to ``data/arms/<arm>.json`` and ``select@<arm>`` reads only that file, so changing ``tau`` reruns the arms
that use it (an AlpaGasus arm without its own tau, and a random arm matching it) and no other.

Methods: ``alpagasus`` (grader score >= tau), ``car`` (ranking + KMeans, ``selection.car``), ``random`` (a
seeded sample the size of the arm named by ``match``, or of ``size`` rows), ``full`` (every row).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ift_select.core.errors import ConfigError, IftSelectError
from ift_select.core.params import CarParams, Params

Spec = dict[str, Any]
Embeddings = tuple[np.ndarray, list[str]]


def resolve(params: Params, name: str) -> Spec:
    """The effective settings of arm ``name`` (a JSON-able dict with ``method`` first)."""
    if name not in params.arms:
        raise ConfigError(f"arms: no arm named {name!r} (arms: {', '.join(params.arms)})")
    arm = params.arms[name]
    if arm.method == "alpagasus":
        return {"method": "alpagasus", "tau": params.tau if arm.tau is None else arm.tau,
                "column": arm.column or params.select.alpagasus.column}
    if arm.method == "car":
        car = params.car
        return {"method": "car", "n1": params.n1 if arm.n1 is None else arm.n1,
                "n2": params.n2 if arm.n2 is None else arm.n2, "scorer": arm.scorer or car.scorer,
                "pca_variance": car.pca_variance, "k": car.k, "n_init": car.n_init, "seed": params.seed}
    if arm.method == "random":
        size: Any = arm.size if arm.size is not None else {"arm": arm.match,
                                                          **resolve(params, str(arm.match))}
        return {"method": "random", "size": size, "seed": params.seed}
    return {"method": "full"}


def needs(spec: Spec) -> set[str]:
    """What a selection reads besides the pool: "scores" and/or "embeddings"."""
    method = spec["method"]
    if method == "random":
        return needs(spec["size"]) if isinstance(spec["size"], dict) else set()
    return {"alpagasus": {"scores"}, "car": {"scores", "embeddings"}}.get(method, set())


def describe(spec: Spec) -> str:
    """One line for reports and lineage: 'score >= 4.5', 'top 1000 + top 1 per cluster', ..."""
    method = spec["method"]
    if method == "alpagasus":
        return f"{spec['column']} >= {spec['tau']:g}"
    if method == "car":
        return f"top {spec['n1']} + top {spec['n2']} per cluster ({spec['scorer']})"
    if method == "random":
        size = spec["size"]
        target = f"size of {size['arm']}" if isinstance(size, dict) else f"{size} rows"
        return f"random, {target}, seed {spec['seed']}"
    return "every row"


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


def car_quality(scores: pd.DataFrame, scorer: str) -> pd.Series:
    column = "iqs" if scorer == "iqs" else "score"
    if column not in scores.columns:
        raise ConfigError(f"car.scorer: {scorer!r} needs a {column!r} column in the scores; "
                          "set score.iqs_model so the score stage adds it")
    return scores.set_index("id")[column]


def select(spec: Spec, pool: pd.DataFrame, scores: pd.DataFrame | None = None,
           embeddings: Embeddings | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows of an arm with resolved settings ``spec``, and the selection's figures."""
    method = spec["method"]
    for need, given in (("scores", scores), ("embeddings", embeddings)):
        if need in needs(spec) and given is None:
            raise IftSelectError(f"a {method} arm needs the {need} (run the stage that writes them)")
    info: dict[str, Any] = {"method": method, "rule": describe(spec), "pool_rows": len(pool)}
    if method == "full":
        selected = pool.reset_index(drop=True)
    elif method == "alpagasus":
        selected = select_alpagasus(pool, scores, spec["tau"], spec["column"])  # type: ignore[arg-type]
        info.update(tau=spec["tau"], column=spec["column"])
    elif method == "random":
        size = spec["size"]
        n = len(select(size, pool, scores, embeddings)[0]) if isinstance(size, dict) else int(size)
        selected = select_random(pool, n, spec["seed"])
        info.update(matched=size["arm"] if isinstance(size, dict) else None, seed=spec["seed"])
    elif method == "car":
        from ift_select.selection import car

        vectors, ids = embeddings  # type: ignore[misc]
        settings = CarParams(scorer=spec["scorer"], pca_variance=spec["pca_variance"], k=spec["k"],
                             n_init=spec["n_init"])
        selected, car_info = car.select_car(pool, car_quality(scores, spec["scorer"]), vectors, ids,  # type: ignore[arg-type]
                                            spec["n1"], spec["n2"], settings, spec["seed"])
        info.update(car_info)
    else:
        raise ConfigError(f"arms: no selection method {method!r} (known: alpagasus, car, random, full)")
    info["selected"] = len(selected)
    info["fraction"] = round(len(selected) / max(len(pool), 1), 4)
    return selected, info
