"""Stage score: the AlpaGasus grader rates every pool row 0-5 (plus an IQS column when configured).

    python stages/score.py        (dvc repro score)
Writes data/scores/scores.parquet and metrics/score.json. Replies are cached outside DVC outputs
(.ift-cache/requests.sqlite at the repository root), so a rerun never pays twice for the same request.
"""

from pathlib import Path

from ift_select import stage
from ift_select.config import Params
from ift_select.io import read_parquet, write_parquet
from ift_select.llm import RequestCache
from ift_select.llm.factory import backend_for
from ift_select.paths import cache_dir
from ift_select.prompts import load_template
from ift_select.scoring import score_pool, summarize


def main(params: Params) -> dict:
    p = params.score
    pool = read_parquet("data/prepared/pool.parquet")
    backend = backend_for(p, params.pricing)
    cache = RequestCache(cache_dir() / "requests.sqlite")
    scores, stats = score_pool(pool, backend, load_template(p.prompt), cache, dimension=p.dimension,
                               max_tokens=p.max_new_tokens, min_prob_mass=p.min_prob_mass)
    if p.iqs_model:
        from ift_select import iqs

        scores["iqs"] = iqs.score_pool(p.iqs_model, pool)
    write_parquet(Path("data/scores/scores.parquet"), scores)
    return {**summarize(scores, stats), "grader": backend.name, "prompt": p.prompt}


if __name__ == "__main__":
    stage.run("score", main, stage_params=lambda p: {"score": p.score.__dict__})
