"""Stages score, qualify_grader and qualify_pairs@<name>.

score:           the AlpaGasus grader rates every pool row 0-5 (plus extra graders and an IQS column when
                 configured) -> data/scores/scores.parquet and metrics/score.json.
qualify_grader:  those scores against the pool's flaw labels (``_flaw``), and what each alpagasus arm kept
                 -> metrics/qualify_grader.json.
qualify_pairs:   the same graders on a labelled file of ``qualify_grader.pairs`` (CaR's expert pairs, or JSONL
                 rows with a 0/1 label) -> metrics/qualify_pairs_<name>.json.

Replies are cached outside DVC outputs (.ift-cache/requests.sqlite at the repository root), so a rerun never
pays twice for the same request; a run stopped by max_cost_usd fails the stage with everything finished
kept in that cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.core.errors import BudgetExceeded, IftSelectError
from ift_select.core.io import read_parquet, write_parquet
from ift_select.core.params import Params, ScoreParams
from ift_select.core.paths import cache_dir
from ift_select.core.stage import Stage
from ift_select.grading.qualify import qualify_pool
from ift_select.grading.agreement import measure_file
from ift_select.grading.alpagasus import check_failures, endpoint, score_pool, summarize, with_grader_columns
from ift_select.llm import RequestCache
from ift_select.llm.factory import backend_for, run_outcome
from ift_select.llm.templates import load_template, resolve
from ift_select.provenance.dvcrepo import check_declared

POOL = Path("data/prepared/pool.parquet")
SCORES = Path("data/scores/scores.parquet")
ARMS = Path("data/arms")
SELECTED = Path("data/selected")


def grade(pool: pd.DataFrame, section: ScoreParams, params: Params, cache: RequestCache,
          cache_path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    backend = backend_for(section, params.pricing, cache_path)
    scores, stats = score_pool(pool, backend, load_template(section.prompt), cache, dimension=section.dimension,
                               max_tokens=section.max_new_tokens, min_prob_mass=section.min_prob_mass,
                               fractions=section.fractions, check=section.check)
    info, problem = run_outcome(backend)
    if problem:
        error = BudgetExceeded if problem.startswith("budget") else IftSelectError
        raise error(problem)
    failed = check_failures(scores, endpoint(backend), section.max_error_rate)
    if failed:
        raise IftSelectError(failed)
    return scores, {**summarize(scores, stats), **info, "grader": backend.name, "prompt": section.prompt}


def grade_all(pool: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every configured grader on ``pool``: the primary one, extra graders (``score.graders``) and the IQS
    column (``score.iqs_model``), replies through the request cache."""
    extra = {name: params.score.grader(name) for name in params.score.graders}
    check_declared({"score.model": params.score.model, "score.iqs_model": params.score.iqs_model,
                    **{f"score.graders.{name}.model": section.model for name, section in extra.items()},
                    **{f"score.graders.{name}.prompt": resolve(section.prompt) for name, section in extra.items()}})
    cache_path = cache_dir() / "requests.sqlite"
    cache = RequestCache(cache_path)
    scores, metrics = grade(pool, params.score, params, cache, cache_path)
    for name, section in extra.items():
        graded, extra_metrics = grade(pool, section, params, cache, cache_path)
        scores = with_grader_columns(scores, graded, name)
        metrics.setdefault("graders", {})[name] = extra_metrics
    metrics["cost_usd_total"] = round(metrics["cost_usd"] + sum(g["cost_usd"] for g in
                                                               metrics.get("graders", {}).values()), 6)
    if params.score.iqs_model:
        from ift_select.grading import iqs

        scores["iqs"] = iqs.score_rows(pool, params.score.iqs_model)
    return scores, metrics


def score(params: Params, key: str) -> dict[str, Any]:
    pool = read_parquet(POOL)
    scores, metrics = grade_all(pool, params)
    from ift_select.provenance.dvcrepo import dvc_hash

    prompt = resolve(params.score.prompt)
    record = {"grader": params.score.model, "backend": params.score.backend, "prompt": params.score.prompt,
              "prompt_md5": dvc_hash(prompt)}
    write_parquet(SCORES, scores, record=record)
    return metrics


def qualify_grader(params: Params, key: str) -> dict[str, Any]:
    """The grader's scores against the pool's flaw labels, and what each alpagasus arm kept."""
    arms = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(ARMS.glob("*.json"))}
    selections = {arm: set(read_parquet(SELECTED / f"{arm}.parquet")["id"].astype(str))
                  for arm, spec in arms.items() if spec.get("method") == "alpagasus"}
    return qualify_pool(read_parquet(POOL), read_parquet(SCORES), arms, selections)


def measure(path: str | Path, params: Params, max_rows: int | None = None) -> dict[str, Any]:
    """Every configured grader on a labelled file (``agreement.measure_file``), with the run's counts."""
    runs: list[dict[str, Any]] = []

    def grade(rows: pd.DataFrame) -> pd.DataFrame:
        scores, metrics = grade_all(rows, params)
        runs.append(metrics)
        return scores

    figures = measure_file(path, grade, max_rows)
    return {**figures, **{k: runs[0][k] for k in ("grader", "requests", "cache_hits", "cost_usd_total")}}


def qualify_pairs(params: Params, key: str) -> dict[str, Any]:
    """The configured graders on one labelled file of ``qualify_grader.pairs`` (CaR pairs or 0/1 rows)."""
    return measure(params.qualify_grader.pairs[key], params)


STAGES = {s.name: s for s in (Stage("score", score), Stage("qualify_grader", qualify_grader),
                              Stage("qualify_pairs", qualify_pairs, keyed=True))}
