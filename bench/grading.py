"""What the grading benches share: this checkout's code, the machine they ran on, rows, and a timed grading run."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout, whichever one the active Python has installed
SHARED = REPO.parent / "shared" / "data"


def machine() -> dict[str, Any]:
    """CPU flags that decide precision (AMX, AVX-512 BF16, AVX2), cores and load: every figure comes with them."""
    flags = set(re.findall(r"\w+", next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "")))
    model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "amx_tile": "amx_tile" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "avx2": "avx2" in flags,
            "load": [float(x) for x in open("/proc/loadavg").read().split()[:3]]}


def rows(path: Path, count: int | None, offset: int = 0) -> pd.DataFrame:
    """Pool rows from a JSONL (the sample) or an Alpaca JSON list, with ids."""
    if path.suffix == ".jsonl":
        frame = pd.read_json(path, lines=True)
    else:
        frame = pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
    frame = frame.iloc[offset:offset + count if count else None][["instruction", "input", "output"]]
    frame = frame.fillna("").reset_index(drop=True)
    frame.insert(0, "id", [f"r{offset + i}" for i in range(len(frame))])
    return frame


def grade(backend: Any, frame: pd.DataFrame, section: Any) -> tuple[pd.DataFrame, Any, float]:
    """Grade ``frame`` as the score stage does with ``section`` (params' score section: prompt, dimension,
    max_new_tokens, min_prob_mass, fractions), without a cache (everything computed); the scores, the run's
    counts and its seconds."""
    from ift_select.grading.alpagasus import score_pool
    from ift_select.llm.templates import load_template

    start = time.perf_counter()
    scores, stats = score_pool(frame, backend, load_template(REPO / section.prompt), None, section.dimension,
                               section.max_new_tokens, section.min_prob_mass, section.fractions)
    return scores, stats, time.perf_counter() - start


def emit(figures: dict[str, Any], summary: str) -> None:
    print(summary, file=sys.stderr)
    print(json.dumps(figures, sort_keys=True))
