"""Grade 2,000 Alpaca rows (../shared/data/alpaca52k/alpaca_data.json) through the llama.cpp engine (backend
``llamacpp``) and project the time for all 52,002.

    python bench/grade_alpaca_2000.py                          # params.yaml's score.model and score.llamacpp
    python bench/grade_alpaca_2000.py --model smollm2-135m-instruct --prompt prompts/alpagasus_rating_prefill.txt \
        --fractions                                            # the SmolLM2 figure in the README
    python bench/grade_alpaca_2000.py --model path/to/model.gguf --rows 500 --threads 2 --parallel 2

Everything is computed (no cache); rows the grader could not read get the grader's one format-reminder retry,
as in the score stage. Startup (server start) is timed apart. Figures: rows/s, seconds, the projected hours
for 52,002 rows, statuses, prompts cut to the window, prompt tokens per row, the CPU flags and the load.
``ratio``: 24 h / projected hours; goal: all of Alpaca within a day on this machine (ratio >= 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from grading import REPO, SHARED, emit, grade, machine, rows

ALPACA_ROWS = 52_002


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="GGUF model spec [params.yaml score.model]")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--prompt", default=None, help="rating template [params.yaml score.prompt]")
    parser.add_argument("--fractions", action=argparse.BooleanOptionalAction, default=None,
                        help="continue the other likely digits [params.yaml score.fractions]")
    for name in ("threads", "parallel", "ctx", "ubatch"):
        parser.add_argument(f"--{name}", type=int, default=None, help=f"[params.yaml score.llamacpp.{name}]")
    args = parser.parse_args()

    from ift_select.core.config import load_params
    from ift_select.llm.factory import backend_for

    params = load_params(REPO / "params.yaml")
    overrides = {k: getattr(args, k) for k in ("threads", "parallel", "ctx", "ubatch") if getattr(args, k)}
    section = dataclasses.replace(params.score, backend="llamacpp", model=args.model or params.score.model,
                                  llamacpp=dataclasses.replace(params.score.llamacpp, **overrides),
                                  fractions=params.score.fractions if args.fractions is None else args.fractions,
                                  prompt=args.prompt or params.score.prompt)
    frame = rows(SHARED / "alpaca52k" / "alpaca_data.json", args.rows, args.offset)
    start_machine = machine()
    backend = backend_for(section, {})
    t0 = time.perf_counter()
    backend.start()
    startup = time.perf_counter() - t0
    scores, stats, seconds = grade(backend, frame, section)
    backend.close()
    rps = len(frame) / seconds
    hours = ALPACA_ROWS / rps / 3600
    figures = {
        "model": section.model, "rows": len(frame), "offset": args.offset, "prompt": section.prompt,
        "max_tokens": section.max_new_tokens, "fractions": section.fractions,
        "llamacpp": dataclasses.asdict(section.llamacpp),
        "rows_per_s": round(rps, 3), "seconds": round(seconds, 1), "startup_s": round(startup, 2),
        "projected_52k_hours": round(hours, 2), "requests": stats.requests, "errors": stats.errors,
        "statuses": {str(k): int(v) for k, v in scores["status"].value_counts().items()},
        "by_method": {str(k): int(v) for k, v in scores["method"].value_counts().items() if k},
        "truncated": stats.truncated, "prompt_tokens_per_row": round(stats.tokens_in / max(1, stats.requests), 1),
        "machine_start": start_machine, "machine_end": machine(), "ratio": round(24 / hours, 3),
        "goal": {"projected_52k_hours_max": 24, "met": hours <= 24},
    }
    emit(figures, f"{section.model}: {rps:.3f} rows/s over {len(frame)} Alpaca rows; 52,002 rows in {hours:.1f} h; "
                  f"load {start_machine['load'][0]} -> {figures['machine_end']['load'][0]}")


if __name__ == "__main__":
    main()
