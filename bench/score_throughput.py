"""Grading throughput of the openai backend against a loopback OpenAI-compatible server with a fixed latency.

    python bench/score_throughput.py                 # 1,000 rows, 1 s latency, concurrency 64 (~1 min)
    python bench/score_throughput.py --rows 200 --alpagasus-rows 50      # a quick look

Measures requests/s of (a) this client at concurrency 64 through scoring.score_pool (cache, budget held in
the cache's ledger as the score stage does, parsing: everything the backend adds; cache in a temp dir), (b) an
AlpaGasus-style client (the openai SDK, batches of 5 concurrent requests, each batch awaited before the next;
over --alpagasus-rows rows since its rate does not depend on the row count), (c) the bound concurrency /
latency; then a warm-cache rerun, which must send 0 requests (the server's own count), and (a) again at
200 ms latency, where client CPU becomes the limit. Rows: the first Alpaca 52k rows from ../shared/data when
present, else synthetic ones.
Goals: >= 10x the AlpaGasus-style client, >= 92% of the bound at 1 s and >= 85% at 200 ms, 0 requests when warm.
The last line is one JSON object with the figures, ``ratio`` (this client / AlpaGasus-style) and ``goal``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout, whichever one the active Python has installed
ALPACA = REPO.parent / "shared" / "data" / "alpaca52k" / "alpaca_data.json"
PRICING = {"gpt-4o-mini": {"input": 0.15, "output": 0.60}, "batch_discount": 0.5}
MODEL = "gpt-4o-mini"


def cpu_flags() -> list[str]:
    """Which of the flags that change CPU speed this machine has (amx_tile, avx512_bf16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return [flag for flag in ("amx_tile", "avx512_bf16") if f" {flag}" in text]


@contextmanager
def server(latency: float, *options: str) -> Iterator[str]:
    """tests/fake_openai.py in its own process (so it does not share the client's CPU time slice or GIL)."""
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--latency", str(latency),
                             *options], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("READY"):
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield f"http://127.0.0.1:{line.split()[1]}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def sent(base_url: str) -> int:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats") as fh:
        return int(json.load(fh)["total"])


def pool(rows: int, offset: int = 0) -> pd.DataFrame:
    if ALPACA.exists():
        records = json.loads(ALPACA.read_text(encoding="utf-8"))[offset:offset + rows]
    else:
        records = [{"instruction": f"Explain topic {i}.", "input": "", "output": f"Topic {i} is " + "x " * 80}
                   for i in range(offset, offset + rows)]
    frame = pd.DataFrame(records)[["instruction", "input", "output"]]
    frame.insert(0, "id", [f"r{offset + i}" for i in range(len(frame))])
    return frame


def run_client(base_url: str, rows: pd.DataFrame, cache_path: Path, concurrency: int) -> dict[str, Any]:
    from ift_select.llm import RequestCache, make_backend
    from ift_select.llm.templates import load_template
    from ift_select.grading.alpagasus import score_pool

    backend = make_backend("openai", model=MODEL, base_url=base_url, concurrency=concurrency, pricing=PRICING,
                           max_cost_usd=1000.0, api_key_env="IFT_BENCH_NO_KEY", ledger_path=cache_path)
    template = load_template(REPO / "prompts" / "alpagasus_rating.txt")
    cache = RequestCache(cache_path)
    before = sent(base_url)
    start = time.perf_counter()
    scores, stats = score_pool(rows, backend, template, cache, max_tokens=8)
    seconds = time.perf_counter() - start
    cache.close()
    requests = sent(base_url) - before
    return {"requests": requests, "seconds": round(seconds, 3), "rps": round(requests / seconds, 2) if requests else 0.0,
            "scored": int((scores["status"] == "ok").sum()), "cost_usd": round(stats.cost_usd, 6)}


def run_alpagasus(base_url: str, rows: pd.DataFrame) -> dict[str, Any]:
    """The published AlpaGasus rating loop's pattern: 5 concurrent requests, then wait for all 5."""
    import openai

    from ift_select.llm.templates import load_template
    from ift_select.grading.alpagasus import rating_requests

    requests = rating_requests(rows, load_template(REPO / "prompts" / "alpagasus_rating.txt"), "accuracy", 8)

    async def go() -> float:
        async with openai.AsyncOpenAI(api_key="x", base_url=base_url, max_retries=0) as client:
            start = time.perf_counter()
            for i in range(0, len(requests), 5):
                await asyncio.gather(*(client.chat.completions.create(
                    model=MODEL, max_tokens=8, temperature=0.0,
                    messages=[{"role": r, "content": c} for r, c in req.messages]) for req in requests[i:i + 5]))
            return time.perf_counter() - start

    seconds = asyncio.run(go())
    return {"requests": len(requests), "seconds": round(seconds, 3), "rps": round(len(requests) / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--alpagasus-rows", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--fast-latency", type=float, default=0.2)
    args = parser.parse_args()
    rows = pool(args.rows)
    bound = args.concurrency / args.latency
    with tempfile.TemporaryDirectory() as tmp:
        with server(args.latency) as url:
            client = run_client(url, rows, Path(tmp) / "cache.sqlite", args.concurrency)
            warm = run_client(url, rows, Path(tmp) / "cache.sqlite", args.concurrency)
            alpagasus = run_alpagasus(url, pool(args.alpagasus_rows, offset=args.rows))
        with server(args.fast_latency) as url:
            fast = run_client(url, rows, Path(tmp) / "cache_fast.sqlite", args.concurrency)
    fast_bound = args.concurrency / args.fast_latency
    ratio = client["rps"] / alpagasus["rps"]
    pct = client["rps"] / bound
    figures = {
        "rows": args.rows, "latency_s": args.latency, "concurrency": args.concurrency,
        "client_rps": client["rps"], "client_seconds": client["seconds"], "client_scored": client["scored"],
        "alpagasus_rps": alpagasus["rps"], "alpagasus_rows": args.alpagasus_rows, "bound_rps": bound,
        "pct_of_bound": round(pct, 3), "warm_requests": warm["requests"], "warm_seconds": warm["seconds"],
        "fast_latency_s": args.fast_latency, "fast_rps": fast["rps"], "fast_bound_rps": fast_bound,
        "fast_pct_of_bound": round(fast["rps"] / fast_bound, 3),
        "ratio": round(ratio, 2),
        "cpu_flags": cpu_flags(), "load_avg": [round(x, 2) for x in os.getloadavg()],
        "goal": {"ratio_min": 10, "pct_of_bound_min": 0.92, "fast_pct_of_bound_min": 0.85, "warm_requests": 0,
                 "met": ratio >= 10 and pct >= 0.92 and fast["rps"] / fast_bound >= 0.85 and warm["requests"] == 0},
    }
    print(f"this client {client['rps']} req/s ({pct:.0%} of {bound:g}); AlpaGasus-style {alpagasus['rps']} req/s; "
          f"warm rerun sent {warm['requests']}; at {args.fast_latency * 1000:g} ms: {fast['rps']} req/s "
          f"({figures['fast_pct_of_bound']:.0%} of {fast_bound:g})", file=sys.stderr)
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
