"""Judge candidates on labelled pairs: agreement beside "the longer answer wins", and seconds per pair.

    python bench/judge_candidates.py                                   # constructed set, SmolLM2 candidates
    python bench/judge_candidates.py --pairs ../shared/data/pandalm170/testset-v1.json --sample 200
    python bench/judge_candidates.py --gguf /path/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf --only qwen-cpp-debiased

Every candidate is a judge configuration of this project (params.yaml's judge section), run through the same
code as the qualify_judge stage (both orders; the request cache is a temporary directory, so every request is
sent and timed). GGUF candidates run behind llama.cpp's OpenAI-compatible server (tests/llamacpp_server.py,
``xllamacpp``) through the openai backend. Prints the load average and the CPU flags first; the last line is
one JSON object: per candidate its figures, ``ratio`` (the best candidate's non-tie agreement / longer-wins'),
``goal`` (beat longer-wins: ratio > 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from ift_select.core.params import JudgeParams, OpenAISettings  # noqa: E402
from ift_select.evaluation.labelled import load_pairs  # noqa: E402
from ift_select.evaluation.qualify import judge_labelled  # noqa: E402
from ift_select.llm import RequestCache  # noqa: E402
from ift_select.llm.factory import backend_for  # noqa: E402
from ift_select.llm.templates import load_template  # noqa: E402

MTB = "prompts/judge_mt_bench_prefill.txt"
LOCAL = {"smollm2-local-two_order": JudgeParams(model="smollm2-135m-instruct", prompt=MTB, decision="two_order"),
         "smollm2-local-debiased": JudgeParams(model="smollm2-135m-instruct", prompt=MTB, decision="debiased")}
CPP = {"qwen-cpp-two_order": "two_order", "qwen-cpp-debiased": "debiased"}
FIGURES = ("n", "agreement", "agreement_non_tie", "baseline_longer", "kappa", "first_position_rate", "flip_rate",
           "longer_share", "beats_longer", "beats_longer_ci", "seconds_per_pair", "unparsed")


def cpu() -> dict[str, Any]:
    flags = subprocess.run(["grep", "-o", "-m1", "-E", "amx_tile|avx512_bf16", "/proc/cpuinfo"],
                           capture_output=True, text=True).stdout.split()
    return {"load": [round(x, 2) for x in os.getloadavg()], "amx_tile": "amx_tile" in flags,
            "avx512_bf16": "avx512_bf16" in flags}


TIMED: dict[str, float] = {}  # model -> seconds per pair of its first (uncached) run


def measure(judge: JudgeParams, pairs_path: str, sample: int | None, cache_dir: Path) -> dict[str, Any]:
    """One candidate's figures. Candidates of one model send the same requests: the first is timed, the
    others reuse its replies from the cache and report its time."""
    pairs, _ = load_pairs(pairs_path, sample=sample, seed=0)
    backend = backend_for(judge, {})
    figures, _ = judge_labelled(pairs, "bench", backend, load_template(REPO / judge.prompt),
                                RequestCache(cache_dir / "requests.sqlite"), judge.decision,
                                max_tokens=judge.max_new_tokens, min_prob_mass=judge.min_prob_mass)
    TIMED.setdefault(judge.model, figures["seconds_per_pair"])
    return {k: figures.get(k) for k in FIGURES} | {"judge": figures["judge"], "decision": judge.decision,
                                                   "seconds_per_pair": TIMED[judge.model], "load_after": cpu()["load"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default=str(REPO / "data/sample/judge_pairs.jsonl"))
    ap.add_argument("--sample", type=int, default=None, help="a seeded N pairs of the file")
    ap.add_argument("--gguf", default=None, help="a GGUF to judge with through llama.cpp (the qwen-cpp-* candidates)")
    ap.add_argument("--only", nargs="*", default=None, help="candidate names to run")
    args = ap.parse_args()
    print(json.dumps({"cpu": cpu()}), flush=True)
    wanted = set(args.only) if args.only else None
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, judge in LOCAL.items():
            if wanted is None or name in wanted:
                results[name] = measure(dataclasses.replace(judge, max_new_tokens=1), args.pairs, args.sample,
                                        Path(tmp))
                print(json.dumps({name: results[name]}), flush=True)
        cpp = [n for n in CPP if wanted is None or n in wanted]
        if args.gguf and cpp:
            from llamacpp_server import LlamaServer

            with LlamaServer(args.gguf, ctx=4096) as server:
                settings = OpenAISettings(base_url=server.base_url, api_key_env="IFT_BENCH_NO_KEY", prefill="send",
                                          concurrency=1, timeout_s=600)
                for name in cpp:
                    judge = JudgeParams(backend="openai", model=Path(args.gguf).stem, prompt=MTB, decision=CPP[name],
                                        max_new_tokens=1, openai=settings)
                    results[name] = measure(judge, args.pairs, args.sample, Path(tmp))
                    print(json.dumps({name: results[name]}), flush=True)
    best = max((r["agreement_non_tie"] or 0.0 for r in results.values()), default=0.0)
    baseline = next((r["baseline_longer"] for r in results.values()), None)
    print(json.dumps({"pairs": args.pairs, "sample": args.sample, "candidates": results, "cpu": cpu(),
                      "ratio": round(best / baseline, 4) if baseline else None,
                      "goal": "ratio > 1: a candidate beats 'the longer answer wins' on the non-tie pairs"}))


if __name__ == "__main__":
    main()
