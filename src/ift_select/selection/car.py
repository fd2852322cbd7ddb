"""CaR selection (Ge et al., 2024, arXiv 2402.18191): Clustering and Ranking.

1. Rank every pool row by quality, DESCENDING (higher is better). CaR's released code once sorted ascending
   and picked the worst rows; ``rank_order`` is the single place that decides the order and the tests pin it.
   Ties are broken by id (ascending), so the ranking never depends on the pool's row order.
   Rows whose quality is NaN (unparsed grader reply, no IQS score, id missing from the scores) rank after every
   scored row: they are picked only when fewer scored rows remain than there are slots (top n1 overall, or
   top n2 of a cluster with fewer than n2 scored rows). ``nan_quality_rows`` / ``nan_selected`` report them.
2. Embeddings -> PCA keeping ``car.pca_variance`` of the variance -> KMeans with k = int(sqrt(n/2)) clusters
   (161 for Alpaca's 52,002 rows) unless ``car.k`` is set; seeded, ``n_init`` explicit.
3. Selection = top ``n1`` rows overall ∪ top ``n2`` rows of every cluster, de-duplicated by id
   (size <= n1 + k*n2). ``car_reason`` says why a row is in: ``top_n1``, ``cluster`` or ``both``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from ift_select.core.params import CarParams
from ift_select.core.errors import ConfigError, DataError


def k_for(n: int) -> int:
    """CaR's number of clusters: int(sqrt(n / 2)), at least 1 (161 for 52,002 rows)."""
    return max(1, int(math.sqrt(n / 2)))


def align_embeddings(pool_ids: list[str], embeddings: np.ndarray, ids: list[str]) -> np.ndarray:
    """Rows of ``embeddings`` (labelled by ``ids``) in the order of ``pool_ids``; extra embedded ids are ignored."""
    if len(ids) != len(embeddings):
        raise DataError(f"embeddings: {len(ids)} ids for {len(embeddings)} vectors (re-run the embed stage)")
    position: dict[str, int] = {}
    for i, row_id in enumerate(ids):
        if position.setdefault(str(row_id), i) != i:
            raise DataError(f"embeddings: id {row_id} appears twice in the embedding ids (re-run the embed stage)")
    missing = [row_id for row_id in pool_ids if row_id not in position]
    if missing:
        raise DataError(
            f"embeddings: pool id {missing[0]} has no embedding ({len(missing)} of {len(pool_ids)} pool ids missing; "
            "the embeddings are older than the pool: dvc repro embed)"
        )
    return np.asarray(embeddings, dtype=np.float32)[[position[row_id] for row_id in pool_ids]]


def rank_order(ids: pd.Series, quality: pd.Series) -> np.ndarray:
    """Positions of the rows, best first: quality descending, NaN last, ties by id ascending."""
    q = pd.to_numeric(quality, errors="coerce").to_numpy(dtype=np.float64)
    nan = np.isnan(q)
    # lexsort: the last key is primary -> (nan flag, -quality, id)
    return np.lexsort((ids.astype(str).to_numpy(), np.where(nan, 0.0, -q), nan))


def reduce_pca(x: np.ndarray, variance: float, seed: int) -> tuple[np.ndarray, int, float]:
    """PCA keeping ``variance`` of the variance (full SVD); returns (reduced, components, retained variance)."""
    if not 0.0 < variance <= 1.0:
        raise ConfigError(f"params.yaml: car.pca_variance = {variance} must be in (0, 1]")
    if variance >= 1.0 or len(x) < 2:
        return x, x.shape[1], 1.0
    pca = PCA(n_components=variance, svd_solver="full", random_state=seed)
    reduced = pca.fit_transform(x)
    return reduced.astype(np.float32), int(pca.n_components_), float(pca.explained_variance_ratio_.sum())


def cluster(x: np.ndarray, k: int, n_init: int, seed: int) -> np.ndarray:
    if n_init < 1:
        raise ConfigError(f"params.yaml: car.n_init = {n_init} must be >= 1")
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(x).astype(np.int64)


def pool_clusters(pool_ids: list[str], embeddings: np.ndarray, ids: list[str], params: CarParams,
                  seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """CaR's clustering of the pool: cluster label per row of ``pool_ids`` (embeddings aligned by id, PCA keeping
    ``pca_variance``, seeded KMeans with k = int(sqrt(n/2)) unless ``params.k``). Also used by the report to give
    every arm's cluster coverage on the same clusters."""
    x = align_embeddings(pool_ids, embeddings, ids)
    n = len(pool_ids)
    k = min(params.k if params.k is not None else k_for(n), n)
    if k < 1:
        raise ConfigError(f"params.yaml: car.k = {params.k} must be >= 1")
    reduced, components, retained = reduce_pca(x, params.pca_variance, seed)
    labels = cluster(reduced, k, params.n_init, seed)
    return labels, {"k": int(k), "pca_components": int(components), "pca_variance_retained": round(retained, 6)}


def select_car(
    pool: pd.DataFrame,
    quality: pd.Series,
    embeddings: np.ndarray,
    ids: list[str],
    n1: int,
    n2: int,
    params: CarParams,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Select CaR's rows from ``pool``. ``quality`` is indexed by row id (higher is better); ``embeddings`` row i
    belongs to ``ids[i]``. Returns the selected pool rows, best first, with ``quality``, ``cluster`` and
    ``car_reason`` added, and the selection's figures."""
    if n1 < 0 or n2 < 0:
        raise ConfigError(f"params.yaml: n1 and n2 must be >= 0 (n1 = {n1}, n2 = {n2})")
    if "id" not in pool:
        raise DataError("pool: no 'id' column (run the prepare stage first)")
    if pool.empty:
        raise DataError("pool: no rows to select from")
    pool = pool.reset_index(drop=True)
    if pool["id"].duplicated().any():
        raise DataError(f"pool: id {pool.loc[pool['id'].duplicated(), 'id'].iloc[0]} appears twice")
    pool_ids = pool["id"].astype(str).tolist()
    labels, clustering = pool_clusters(pool_ids, embeddings, ids, params, seed)
    q = pd.to_numeric(quality, errors="coerce")
    q.index = q.index.astype(str)
    if q.index.duplicated().any():
        raise DataError(f"quality: id {q.index[q.index.duplicated()][0]} is scored twice")
    row_quality = q.reindex(pool_ids).to_numpy(dtype=np.float64)

    n = len(pool)
    order = rank_order(pool["id"], pd.Series(row_quality))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    in_n1 = rank < n1
    within = pd.Series(labels[order]).groupby(labels[order]).cumcount().to_numpy()
    in_cluster = np.zeros(n, dtype=bool)
    in_cluster[order] = within < n2

    chosen = order[(in_n1 | in_cluster)[order]]  # best first
    out = pool.iloc[chosen].copy()
    out["quality"] = row_quality[chosen]
    out["cluster"] = labels[chosen]
    reason = np.where(in_n1 & in_cluster, "both", np.where(in_n1, "top_n1", "cluster"))
    out["car_reason"] = reason[chosen]
    out = out.reset_index(drop=True)
    nan = np.isnan(row_quality)
    metrics = {
        "selected": int(len(out)),
        "n1": int(n1),
        "n2": int(n2),
        "k": clustering["k"],
        "clusters_covered": int(pd.Series(labels[chosen]).nunique()),
        "cluster_picks": int(in_cluster.sum()),
        "cluster_picks_in_top_n1": int((in_cluster & in_n1).sum()),
        "pca_components": clustering["pca_components"],
        "pca_variance_retained": clustering["pca_variance_retained"],
        "pool_rows": int(n),
        "nan_quality_rows": int(nan.sum()),
        "nan_selected": int(nan[chosen].sum()),
        "seed": int(seed),
    }
    return out, metrics
