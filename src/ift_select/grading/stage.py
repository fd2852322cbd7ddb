"""Stage score: the AlpaGasus grader rates every pool row 0-5 (plus extra graders and an IQS column when
configured) -> data/scores/scores.parquet and metrics/score.json.

Replies are cached outside DVC outputs (.ift-cache/requests.sqlite at the repository root), so a rerun never
pays twice for the same request; a run stopped by max_cost_usd fails the stage with everything finished
kept in that cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.core.errors import BudgetExceeded, IftSelectError
from ift_select.core.io import read_parquet, write_parquet
from ift_select.core.params import Params, ScoreParams
from ift_select.core.paths import cache_dir
from ift_select.core.stage import Stage
from ift_select.grading.alpagasus import score_pool, summarize, with_grader_columns
from ift_select.llm import RequestCache
from ift_select.llm.factory import backend_for, run_outcome
from ift_select.llm.templates import load_template, resolve

POOL = Path("data/prepared/pool.parquet")
SCORES = Path("data/scores/scores.parquet")


def grade(pool: pd.DataFrame, section: ScoreParams, params: Params, cache: RequestCache,
          cache_path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    backend = backend_for(section, params.pricing, cache_path)
    scores, stats = score_pool(pool, backend, load_template(section.prompt), cache, dimension=section.dimension,
                               max_tokens=section.max_new_tokens, min_prob_mass=section.min_prob_mass)
    info, problem = run_outcome(backend)
    if problem:
        error = BudgetExceeded if problem.startswith("budget") else IftSelectError
        raise error(problem)
    if len(scores) and (scores["status"] == "error").all():
        from ift_select.llm.openai_compat import public_url

        url = getattr(backend, "base_url", None)
        where = f"{backend.name} at {public_url(url)}" if url else backend.name
        raise IftSelectError(f"{where}: no row was graded; first error: {scores['error'].iloc[0]}")
    return scores, {**summarize(scores, stats), **info, "grader": backend.name, "prompt": section.prompt}


def score(params: Params, key: str) -> dict[str, Any]:
    pool = read_parquet(POOL)
    cache_path = cache_dir() / "requests.sqlite"
    cache = RequestCache(cache_path)
    scores, metrics = grade(pool, params.score, params, cache, cache_path)
    for name in params.score.graders:
        extra, extra_metrics = grade(pool, params.score.grader(name), params, cache, cache_path)
        scores = with_grader_columns(scores, extra, name)
        metrics.setdefault("graders", {})[name] = extra_metrics
    metrics["cost_usd_total"] = round(metrics["cost_usd"] + sum(g["cost_usd"] for g in
                                                               metrics.get("graders", {}).values()), 6)
    if params.score.iqs_model:
        from ift_select.grading import iqs

        scores["iqs"] = iqs.score_rows(pool, params.score.iqs_model)
    from ift_select.provenance.dvcrepo import dvc_hash

    prompt = resolve(params.score.prompt)
    record = {"grader": params.score.model, "backend": params.score.backend, "prompt": params.score.prompt,
              "prompt_md5": dvc_hash(prompt)}
    write_parquet(SCORES, scores, record=record)
    return metrics


STAGES = {"score": Stage("score", score)}
