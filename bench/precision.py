"""What `precision: auto` picks on this CPU, against what is actually faster.

    python bench/precision.py            # a 512x2048x576 Linear, fp32 and bf16 autocast, interleaved

Both precisions run alternately in the same process (a neighbour's load slows both alike). Ends with one
JSON line: fp32 and bf16 times (ms, best of the rounds), what ``auto`` picked and why, ``ratio`` = the
picked precision's time / the faster one's (goal: 1.0 within noise, <= 1.05), and the CPU flags.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from ift_select.core import devices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"cpu: {devices.cpu_flags()}", flush=True)
    n, k, m = devices.PROBE_SHAPE
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(k, m), torch.randn(n, k)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for name in best:
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                    layer(x)
                best[name] = min(best[name], time.perf_counter() - start)
    choice = devices.choose("auto")
    picked = "bf16" if choice.bf16 else "fp32"
    print(json.dumps({"fp32_ms": round(best["fp32"] * 1e3, 2), "bf16_ms": round(best["bf16"] * 1e3, 2),
                      "picked": picked, "reason": choice.reason,
                      "ratio": round(best[picked] / min(best.values()), 3), "goal": "<= 1.05",
                      "cpu": devices.cpu_flags(), "torch": torch.__version__,
                      "load_avg_1m": round(os.getloadavg()[0], 2)}, sort_keys=True))


if __name__ == "__main__":
    main()
