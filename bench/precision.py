"""What `precision: auto` picks on this CPU, against what is actually faster.

    python bench/precision.py            # a 512x2048x576 Linear, fp32 and bf16 autocast, interleaved
    python bench/precision.py --model smollm2-135m-instruct   # also that model's forward pass on 8 x 384 tokens

Both precisions run alternately in the same process (a neighbour's load slows both alike). Ends with one
JSON line: fp32 and bf16 times (ms, best of the rounds), what ``auto`` picked and why, ``ratio`` = the
picked precision's time / the faster one's (goal: 1.0 within noise, <= 1.05), and the CPU flags; with
``--model``, the same for the model's forward pass under ``model`` (the probe's Linear stands in for it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Callable

import torch

from ift_select.core import devices

MODEL_BATCH = (8, 384)  # sequences x tokens (score.batch_size is 8)


def best_times(forward: Callable[[], object], rounds: int) -> dict[str, float]:
    """Best seconds of ``forward`` in fp32 and under bf16 autocast, alternating (the first round warms up)."""
    best = {"fp32": float("inf"), "bf16": float("inf")}
    with torch.inference_mode():
        for round_no in range(rounds + 1):
            for name in best:
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                    forward()
                if round_no:
                    best[name] = min(best[name], time.perf_counter() - start)
    return best


def figures(best: dict[str, float], picked: str) -> dict[str, float | str]:
    return {"fp32_ms": round(best["fp32"] * 1e3, 2), "bf16_ms": round(best["bf16"] * 1e3, 2),
            "ratio": round(best[picked] / min(best.values()), 3)}


def model_forward(spec: str) -> Callable[[], object]:
    from transformers import AutoModelForCausalLM

    from ift_select.llm.models import model_dir

    model = AutoModelForCausalLM.from_pretrained(model_dir(spec), torch_dtype=torch.float32).eval()
    ids = torch.randint(0, model.config.vocab_size, MODEL_BATCH)
    return lambda: model(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--model", help="also time this model's forward pass (alias, HF dir or .gguf)")
    parser.add_argument("--model-rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"cpu: {devices.cpu_flags()}", flush=True)
    n, k, m = devices.PROBE_SHAPE
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(k, m), torch.randn(n, k)
    choice = devices.choose("auto")
    picked = "bf16" if choice.bf16 else "fp32"
    result: dict[str, object] = {**figures(best_times(lambda: layer(x), args.rounds), picked),
                                 "picked": picked, "reason": choice.reason, "goal": "<= 1.05"}
    if args.model:
        result["model"] = {"spec": args.model, "tokens": list(MODEL_BATCH),
                           **figures(best_times(model_forward(args.model), args.model_rounds), picked)}
    result.update(cpu=devices.cpu_flags(), torch=torch.__version__, load_avg_1m=round(os.getloadavg()[0], 2))
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
