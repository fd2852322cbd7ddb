"""Stages reference and judge@<pair>.

reference:  the configured test sets' reference answers as an opponent "arm" -> data/generations/reference.parquet
            (items without a reference are counted in metrics/reference.json, never invented).
judge:      the judge compares two arms' answers (or an arm and ``reference``: CaR's protocol) on every test item,
            in both orders -> data/judgments/<pair>.parquet and metrics/judge_<pair>.json (win/tie/lose, WS, WR,
            QS with intervals, per test set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.core.config import REFERENCE
from ift_select.core.errors import ConfigError, DataError
from ift_select.core.io import read_parquet, write_parquet
from ift_select.core.params import Params
from ift_select.core.paths import cache_dir
from ift_select.core.stage import Stage
from ift_select.data.prepared import test_items
from ift_select.evaluation.metrics import summarize
from ift_select.evaluation.pairwise import GEN_COLUMNS, judge_pair, reference_generations
from ift_select.llm import RequestCache
from ift_select.llm.factory import backend_for
from ift_select.llm.templates import load_template


def generations_path(arm: str) -> Path:
    return Path(f"data/generations/{arm}.parquet")


def reference(params: Params, key: str) -> dict[str, Any]:
    tests = test_items(params)
    has = tests["reference"].notna() & (tests["reference"].astype(str).str.strip() != "") \
        if "reference" in tests else pd.Series(False, index=tests.index)
    refs = reference_generations(tests) if has.any() else pd.DataFrame(columns=list(GEN_COLUMNS))
    write_parquet(generations_path(REFERENCE), refs.assign(arm=REFERENCE))
    by_set = {str(name): {"items": int(len(group)), "with_reference": int(has[group.index].sum())}
              for name, group in tests.groupby("test_set")}
    return {"items": int(len(tests)), "with_reference": int(has.sum()), "without_reference": int((~has).sum()),
            "by_test_set": by_set}


def judge(params: Params, key: str) -> dict[str, Any]:
    if key not in params.judge.pairs:
        raise ConfigError(f"judge.pairs: no pair named {key!r} (known: {', '.join(params.judge.pairs)})")
    pair = params.judge.pairs[key]
    gen_a, gen_b = read_parquet(generations_path(pair.a)), read_parquet(generations_path(pair.b))
    unanswered = 0
    if pair.b == REFERENCE:  # items without a reference answer are counted, not judged
        if gen_b.empty:
            raise DataError(f"judge.pairs.{key}: no test item has a reference answer (test sets: "
                            f"{', '.join(params.data.test_sets)}); judge against an arm instead")
        known = set(zip(gen_b["test_set"], gen_b["item_id"].astype(str)))
        unanswered = sum((t, str(i)) not in known for t, i in zip(gen_a["test_set"], gen_a["item_id"]))
    backend = backend_for(params.judge, params.pricing)
    cache = RequestCache(cache_dir() / "requests.sqlite")
    judgments, stats = judge_pair(gen_a, gen_b, pair.a, pair.b, backend, load_template(params.judge.prompt), cache,
                                  tests=test_items(params), max_tokens=params.judge.max_new_tokens,
                                  min_prob_mass=params.judge.min_prob_mass)
    write_parquet(Path(f"data/judgments/{key}.parquet"), judgments)
    summary = summarize(judgments, bootstrap=params.report.bootstrap, ci=params.report.ci, seed=params.seed)
    return {"pair": key, "a": pair.a, "b": pair.b, "judge": backend.name, "prompt": params.judge.prompt,
            "items_without_reference": unanswered, **stats.to_dict(), "by_test_set": summary}


STAGES = {s.name: s for s in (Stage("reference", reference), Stage("judge", judge, keyed=True))}
