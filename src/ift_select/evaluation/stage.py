"""Stages reference and judge@<pair>.

reference:  the configured test sets' reference answers as an opponent "arm" -> data/generations/reference.parquet
            (items without a reference are counted in metrics/reference.json, never invented).
judge:      the judge compares two arms' answers (or an arm and ``reference``: CaR's protocol, with
            ``judge.reference_prompt``) on every test item, in both orders -> data/judgments/<pair>.parquet and
            metrics/judge_<pair>.json (win/tie/lose, WS, WR, QS with intervals, LC win rate, per test set).
labelled_pairs: one labelled pair file of ``judge.qualify.sets`` -> data/prepared/pairs/<set>.parquet.
qualify_judge: the configured judge on every labelled set, both orders -> data/qualify/<set>.parquet and
            metrics/qualify.json (agreement, kappa, position and length figures beside longer-wins; qualified).

The judge and qualify_judge stages fail, naming the endpoint and the first error, when every request failed
or more than ``judge.max_error_rate`` of them did (finished replies stay in the request cache).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.core.config import REFERENCE
from ift_select.core.errors import ConfigError, DataError, IftSelectError
from ift_select.core.io import read_parquet, write_parquet
from ift_select.core.params import Params
from ift_select.core.paths import cache_dir
from ift_select.core.stage import Stage
from ift_select.data.prepared import test_items
from ift_select.evaluation.labelled import load_pairs
from ift_select.evaluation.metrics import summarize
from ift_select.evaluation.pairwise import GEN_COLUMNS, judge_pair, reference_generations
from ift_select.evaluation.qualify import judge_labelled, verdict
from ift_select.llm import Backend, RequestCache
from ift_select.llm.factory import backend_for
from ift_select.llm.runner import failure_message
from ift_select.llm.templates import load_template
from ift_select.provenance.dvcrepo import check_declared


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


def check_errors(judgments: pd.DataFrame, max_error_rate: float, backend: Backend, what: str = "") -> None:
    """Fail when every request failed or more than ``max_error_rate`` of them did (``what``: a prefix)."""
    endpoint = backend.identity().get("base_url") or backend.name
    failed = failure_message(judgments["status"].tolist(), judgments["error"].tolist(), max_error_rate, endpoint,
                             "judge.max_error_rate", "judge requests")
    if failed:
        raise IftSelectError(what + failed)


def judge(params: Params, key: str) -> dict[str, Any]:
    j = params.judge
    if key not in j.pairs:
        raise ConfigError(f"judge.pairs: no pair named {key!r} (known: {', '.join(j.pairs)})")
    pair = j.pairs[key]
    # both templates are read by every pair (checked at once), so both are deps of every judge@ stage
    templates = {"pair": load_template(j.prompt), REFERENCE: load_template(j.reference_prompt)}
    template = templates[REFERENCE if pair.b == REFERENCE else "pair"]
    gen_a, gen_b = read_parquet(generations_path(pair.a)), read_parquet(generations_path(pair.b))
    unanswered = 0
    if pair.b == REFERENCE:  # items without a reference answer are counted, not judged
        if gen_b.empty:
            raise DataError(f"judge.pairs.{key}: no test item has a reference answer (test sets: "
                            f"{', '.join(params.data.test_sets)}); judge against an arm instead")
        known = set(zip(gen_b["test_set"], gen_b["item_id"].astype(str)))
        unanswered = sum((t, str(i)) not in known for t, i in zip(gen_a["test_set"], gen_a["item_id"]))
    check_declared({"judge.model": j.model})
    backend = backend_for(j, params.pricing)
    cache = RequestCache(cache_dir() / "requests.sqlite")
    judgments, stats = judge_pair(gen_a, gen_b, pair.a, pair.b, backend, template, cache, tests=test_items(params),
                                  max_tokens=j.max_new_tokens, min_prob_mass=j.min_prob_mass, decision=j.decision)
    check_errors(judgments, j.max_error_rate, backend)
    write_parquet(Path(f"data/judgments/{key}.parquet"), judgments)
    summary = summarize(judgments, bootstrap=params.report.bootstrap, ci=params.report.ci, seed=params.seed)
    return {"pair": key, "a": pair.a, "b": pair.b, "judge": backend.name, "prompt": template.path,
            "prompt_sha": template.sha, "decision": j.decision, "items_without_reference": unanswered,
            **stats.to_dict(), "by_test_set": summary}


def pairs_path(name: str) -> Path:
    return Path(f"data/prepared/pairs/{name}.parquet")


def labelled_pairs(params: Params, key: str) -> dict[str, Any]:
    sets = params.judge.qualify.sets
    if key not in sets:
        raise ConfigError(f"judge.qualify.sets: no set named {key!r} (known: {', '.join(sets)})")
    spec = sets[key]
    pairs, coerced = load_pairs(spec.path, sample=spec.sample, seed=spec.seed)
    write_parquet(pairs_path(key), pairs, record={"source": spec.path, "kind": spec.kind})
    return {"set": key, "kind": spec.kind, "source": spec.path, "pairs": len(pairs), "sample": spec.sample,
            "labels": {str(k): int(v) for k, v in pairs["label"].value_counts().sort_index().items()},
            "coerced_booleans": coerced}


def qualify_judge(params: Params, key: str) -> dict[str, Any]:
    j = params.judge
    sets = dict(j.qualify.sets)
    if not sets:
        raise ConfigError("judge.qualify.sets: no labelled set (the default is the constructed set "
                          "{constructed: {path: data/sample/labelled_pairs.jsonl}})")
    check_declared({"judge.model": j.model})
    backend, template = backend_for(j, params.pricing), load_template(j.prompt)
    cache = RequestCache(cache_dir() / "requests.sqlite")
    results, frames = {}, {}
    for name, spec in sets.items():
        figures, frames[name] = judge_labelled(read_parquet(pairs_path(name)), f"qualify_{name}", backend, template,
                                               cache, j.decision, max_tokens=j.max_new_tokens,
                                               min_prob_mass=j.min_prob_mass)
        check_errors(frames[name], j.max_error_rate, backend, f"set {name} ({spec.path}): ")
        results[name] = {"kind": spec.kind, "path": spec.path, **figures}
    for name, frame in frames.items():  # written only once every set is judged
        write_parquet(Path(f"data/qualify/{name}.parquet"), frame)
    qualified, kind, deciding = verdict(results, {name: spec.kind for name, spec in sets.items()})
    totals = {k: round(sum(r[k] for r in results.values()), 6)
              for k in ("rows", "requests", "cache_hits", "errors", "tokens_in", "tokens_out", "cost_usd")}
    return {"judge": f"{backend.name}|prompt:{template.sha}", "backend": backend.name, "prompt": j.prompt,
            "prompt_sha": template.sha, "decision": j.decision, "qualified": qualified, "decided_on": kind,
            "deciding_sets": deciding, **totals, "sets": results}


STAGES = {s.name: s for s in (Stage("reference", reference), Stage("judge", judge, keyed=True),
                              Stage("labelled_pairs", labelled_pairs, keyed=True),
                              Stage("qualify_judge", qualify_judge, metrics_path="metrics/qualify.json"))}
