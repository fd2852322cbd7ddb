"""Batched vs one-at-a-time greedy generation on CPU (SmolLM2-135M-Instruct, Vicuna questions).

    nice python bench/generate.py                          # 24 prompts, 48 new tokens, batch 16, fp32
    nice python bench/generate.py --precision auto         # bf16 autocast where the CPU supports it
    nice python bench/generate.py --prompts 16 --model tiny-random-llama

AlpaGasus' generation script answers one prompt at a time; ``ift_select.training.generation.generate`` batches
length-sorted prompts with left padding. Both runs go through ``generate`` (model load included, after a
warm-up load), differing only in ``batch_size``. The ratio uses CPU time of one thread (``--threads 1``):
on a shared machine wall time mostly measures the other processes; wall-time figures are reported beside it.
Goal: >= 4x faster, greedy outputs identical. Ends with one JSON line.

fp32 by default: identical greedy outputs are a property of correct left padding, masks and positions, which
fp32 shows. bf16 kernels round differently for different batch shapes, so under ``--precision auto`` some
greedy answers diverge after a few tokens between batch sizes (measured: 9 of 24) while batched decoding runs ~1.9x faster.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from ift_select.llm.models import model_dir
from ift_select.core.devices import cpu_flags
from ift_select.core.params import GenerateParams
from ift_select.training.generation import generate, load_model

VICUNA = Path(__file__).resolve().parents[2] / "shared" / "data" / "vicuna80" / "question.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(VICUNA))
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    questions = pd.read_json(args.data, lines=True).head(args.prompts)
    items = pd.DataFrame({"id": questions["question_id"].astype(str), "test_set": "vicuna80",
                          "instruction": questions["text"], "input": ""})
    path = model_dir(args.model)
    load_model(path)  # warm the file cache so neither timed run pays for the first read

    timings, walls, outputs = {}, {}, {}
    for name, batch_size in (("batched", args.batch_size), ("single", 1)):
        params = GenerateParams(batch_size=batch_size, max_new_tokens=args.max_new_tokens, precision=args.precision)
        cpu, wall = time.process_time(), time.perf_counter()
        outputs[name] = generate(path, items, params, seed=0)
        timings[name], walls[name] = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{name}: cpu {timings[name]:.1f} s, wall {walls[name]:.1f} s", file=sys.stderr)

    same = outputs["batched"]["output"].tolist() == outputs["single"]["output"].tolist()
    differing = int((outputs["batched"]["output"] != outputs["single"]["output"]).sum())
    tokens = int(outputs["batched"]["tokens_out"].sum())
    ratio = timings["single"] / timings["batched"]
    print(json.dumps({"model": args.model, "prompts": len(items), "max_new_tokens": args.max_new_tokens,
                      "batch_size": args.batch_size, "precision": args.precision, "tokens_out": tokens,
                      "threads": args.threads, "cpu_s_batched": round(timings["batched"], 2),
                      "cpu_s_single": round(timings["single"], 2), "wall_s_batched": round(walls["batched"], 2),
                      "wall_s_single": round(walls["single"], 2),
                      "tokens_per_cpu_s_batched": round(tokens / timings["batched"], 1),
                      "tokens_per_cpu_s_single": round(tokens / timings["single"], 1),
                      "ratio_wall": round(walls["single"] / walls["batched"], 3),
                      "identical_outputs": same, "differing_outputs": differing,
                      "finish_eos": int((outputs["batched"]["finish"] == "eos").sum()),
                      "ratio": round(ratio, 3), "goal": {"ratio_min": 4.0, "identical_outputs": True},
                      "met": bool(ratio >= 4.0 and same), "cpu": cpu_flags()}))


if __name__ == "__main__":
    main()
