"""Load: the papers' pool, Alpaca 52k, through prepare -> score -> embed -> arms -> select@<every arm>, the
grader behind a loopback OpenAI-compatible server with 200 ms latency at concurrency 64.

    python bench/load_52k.py                 # the whole pool (~30-60 min on a 2-core CPU, most of it embed)
    python bench/load_52k.py --rows 2000     # a quick look (data.max_rows)

A throwaway git + DVC repository holds this checkout's pipeline (tests/pipeline_repo.py) with data.pool =
../shared/data/alpaca52k/alpaca_data.json (read by path), the grader gpt-4o-mini (priced, with a budget)
at tests/fake_openai.py in its own process (replies "<n>" without logprobs, so grades are 0-5 and tau 4.5
keeps about a sixth), the four default arms and CaR at the paper's n1 = 1000, n2 = 1. Then:

1. every stage in order with `dvc repro -s <stage>`: wall time and peak RSS (the largest process of the step,
   DVC or the stage: ``os.wait4``);
2. the request cache holds one reply per pool row; `dvc repro -f -s score` again is all cache hits, 0
   requests (the server's own count), in under a minute;
3. `dvc exp run -S tau=4.5 select@...`: reselects, 0 requests;
4. the report stage (its selection analytics: CaR's clusters of the whole pool, keyword balance), run as
   `python stages/report.py` since no arm is trained here: its peak RSS.

Prints the CPU flags it ran on and the load; the last line is one JSON object with the figures, ``ratio``
(grading req/s / the bound concurrency / latency) and ``goal``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

from pipeline_repo import commit_all, make_repo, pipeline_env  # noqa: E402
from score_throughput import PRICING, cpu_flags, sent, server  # noqa: E402

ALPACA = REPO.parent / "shared" / "data" / "alpaca52k" / "alpaca_data.json"
ARMS = ("alpagasus", "random", "car", "full")
STAGES = ("prepare", "score", "embed", "arms", *(f"select@{arm}" for arm in ARMS))
KEY_ENV = "IFT_BENCH_NO_KEY"
RSS_LIMIT_GB = 8.0  # every step within this (the machine has 24 GB; a laptop 8-16)


def bench_params(base_url: str, rows: int | None, concurrency: int) -> dict[str, Any]:
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(tau=4.0, n1=1000, n2=1)
    params["data"].update(pool=str(ALPACA), max_rows=rows)
    params["score"].update(backend="openai", model="gpt-4o-mini", prompt="prompts/alpagasus_rating.txt")
    params["score"]["openai"].update(base_url=base_url, api_key_env=KEY_ENV, concurrency=concurrency,
                                     max_cost_usd=100.0)
    params["pricing"] = PRICING
    params["report"].update(bootstrap=100)
    params["_tiny"] = {"pool_rows": 36, "test_items": 6}
    return params


def step(root: Path, *cmd: str) -> dict[str, Any]:
    """Run ``cmd`` in ``root``: seconds, peak RSS (GB) of its largest process, output; raises on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env={**pipeline_env(root), KEY_ENV: ""}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out[-4000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2), "out": out}


def dvc(root: Path, *args: str) -> dict[str, Any]:
    return step(root, sys.executable, "-m", "dvc", *args)


def metrics(root: Path, name: str) -> dict[str, Any]:
    return json.loads((root / "metrics" / f"{name}.json").read_text())


def cached_replies(root: Path) -> int:
    with sqlite3.connect(root / ".ift-cache" / "requests.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="data.max_rows (default: the whole pool)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--keep", type=Path, default=None, help="build the repository here and keep it")
    args = parser.parse_args()
    if not ALPACA.exists():
        sys.exit(f"missing {ALPACA} (public data beside the repository; see README)")
    flags = cpu_flags()
    print(f"CPU flags: {flags or 'none of amx_tile, avx512_bf16'}; load {os.getloadavg()}", file=sys.stderr)
    figures: dict[str, Any] = {"latency_s": args.latency, "concurrency": args.concurrency, "cpu_flags": flags,
                               "load_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp, server(args.latency, "--no-logprobs") as url:
        root = args.keep or Path(tmp) / "repo"
        make_repo(root, bench_params(url, args.rows, args.concurrency))
        commit_all(root, "ignore local state")
        stages: dict[str, dict[str, Any]] = {}
        for stage in STAGES:
            before = sent(url)
            result = dvc(root, "repro", "-s", stage)
            stages[stage] = {k: result[k] for k in ("seconds", "peak_rss_gb")} | {"requests": sent(url) - before}
            print(f"{stage}: {stages[stage]}", file=sys.stderr)
        rows = metrics(root, "prepare")["pool"]["kept"]
        score = metrics(root, "score")
        figures.update(rows=rows, stages=stages, cached_replies=cached_replies(root),
                       score_rps=round(score["requests"] / stages["score"]["seconds"], 1),
                       selected={arm: metrics(root, f"select_{arm}")["selected"] for arm in ARMS})
        commit_all(root, "pipeline on Alpaca 52k")

        before = sent(url)
        rerun = dvc(root, "repro", "-f", "-s", "score")
        figures["rerun"] = {"seconds": rerun["seconds"], "peak_rss_gb": rerun["peak_rss_gb"],
                            "requests": sent(url) - before, "cache_hits": metrics(root, "score")["cache_hits"]}
        commit_all(root, "rerun")

        before = sent(url)
        exp = dvc(root, "exp", "run", "-S", "tau=4.5", *(f"select@{arm}" for arm in ARMS))
        figures["tau_4_5"] = {"seconds": exp["seconds"], "requests": sent(url) - before,
                              "ran": sorted(set(re.findall(r"Running stage '([^']+)'", exp["out"]))),
                              "selected": {arm: metrics(root, f"select_{arm}")["selected"] for arm in ARMS}}

        report = step(root, sys.executable, "stages/report.py")
        figures["report"] = {"seconds": report["seconds"], "peak_rss_gb": report["peak_rss_gb"]}
    figures["load_end"] = [round(x, 2) for x in os.getloadavg()]
    bound = args.concurrency / args.latency
    peak = max([s["peak_rss_gb"] for s in stages.values()] + [figures["report"]["peak_rss_gb"]])
    figures["ratio"] = round(figures["score_rps"] / bound, 3)
    figures["goal"] = {"cached_replies": rows, "rerun_requests": 0, "rerun_seconds_max": 60, "tau_4_5_requests": 0,
                       "peak_rss_gb_max": RSS_LIMIT_GB,
                       "met": figures["cached_replies"] == rows and figures["rerun"]["requests"] == 0
                       and figures["rerun"]["seconds"] < 60 and figures["tau_4_5"]["requests"] == 0
                       and peak <= RSS_LIMIT_GB}
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
