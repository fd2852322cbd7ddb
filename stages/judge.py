"""Stage judge@<pair>: the judge compares two arms' answers on every test item, in both orders.

    python stages/judge.py alpagasus_vs_full     (dvc repro judge@alpagasus_vs_full)
Writes data/judgments/<pair>.parquet and metrics/judge_<pair>.json (win/tie/lose, WS, WR, QS per test set).
"""

import sys
from pathlib import Path

import pandas as pd

from ift_select import stage
from ift_select.config import Params
from ift_select.errors import ConfigError
from ift_select.io import read_parquet, write_parquet
from ift_select.judging import judge_pair
from ift_select.llm import RequestCache
from ift_select.llm.factory import backend_for
from ift_select.metrics import summarize
from ift_select.paths import cache_dir
from ift_select.prompts import load_template

PAIR = sys.argv[1] if len(sys.argv) > 1 else ""


def main(params: Params) -> dict:
    if PAIR not in params.judge.pairs:
        raise ConfigError(f"judge.pairs: no pair named {PAIR!r} (known: {', '.join(params.judge.pairs)})")
    pair = params.judge.pairs[PAIR]
    gen_a = read_parquet(f"data/generations/{pair.a}.parquet")
    gen_b = read_parquet(f"data/generations/{pair.b}.parquet")
    tests = pd.concat([pd.read_parquet(t) for t in sorted(Path("data/prepared/tests").glob("*.parquet"))],
                      ignore_index=True)
    backend = backend_for(params.judge, params.pricing)
    cache = RequestCache(cache_dir() / "requests.sqlite")
    judgments, stats = judge_pair(gen_a, gen_b, pair.a, pair.b, backend, load_template(params.judge.prompt), cache,
                                  tests=tests, max_tokens=params.judge.max_new_tokens)
    write_parquet(Path(f"data/judgments/{PAIR}.parquet"), judgments)
    summary = summarize(judgments, bootstrap=params.report.bootstrap, ci=params.report.ci, seed=params.seed)
    return {"pair": PAIR, "a": pair.a, "b": pair.b, "judge": backend.name, "prompt": params.judge.prompt,
            **stats.to_dict(), "by_test_set": summary}


if __name__ == "__main__":
    stage.run(f"judge_{PAIR}", main, stage_params=lambda p: {"judge": {k: v for k, v in p.judge.__dict__.items()
                                                                         if k != "pairs"}})
