"""Build the grader's or judge's backend from its params section (score.* or judge.*), and read back how a run
through it ended (budget stop, refused credentials, batches still running)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ift_select.core.params import JudgeParams, ScoreParams
from ift_select.core.paths import cache_dir
from ift_select.llm import Backend, make_backend


def backend_for(section: ScoreParams | JudgeParams, pricing: dict[str, Any], cache_path: Path | None = None) -> Backend:
    """``cache_path``: the request cache, whose database also holds the cost ledger (default:
    ``.ift-cache/requests.sqlite`` at the repository root, wherever the run's cache is)."""
    if section.backend == "local":
        return make_backend("local", model=section.model, batch_size=section.batch_size,
                            precision=section.precision, max_length=section.max_length)
    if section.backend == "llamacpp":
        return make_backend("llamacpp", model=section.model, **dataclasses.asdict(section.llamacpp))
    settings = dataclasses.asdict(section.openai)
    batch_state = str(cache_path) + ".batches.json" if cache_path else None
    return make_backend("openai", model=section.model, pricing=pricing, batch_state=batch_state,
                        ledger_path=cache_path or cache_dir() / "requests.sqlite", **settings)


def run_outcome(backend: Backend) -> tuple[dict[str, Any], str | None]:
    """Figures to report after a run (budget, pending batches, fatal error) and the reason the run must be
    treated as failed, if any. Everything finished is already in the request cache, so a rerun resumes."""
    info: dict[str, Any] = {}
    problem = None
    ledger = getattr(backend, "ledger", None)
    if ledger is not None:
        info["budget"] = ledger.summary()
        if ledger.stopped is not None:
            problem = f"budget: {ledger.stopped} (raise max_cost_usd; finished requests are cached)"
    pending = getattr(backend, "pending", None)
    if pending:
        info["pending_batches"] = list(pending)
        problem = problem or f"{len(pending)} batch(es) still running at the provider; rerun to collect them"
    fatal = getattr(backend, "fatal", None)
    if fatal:
        info["fatal_error"] = fatal
        problem = f"{backend.name} refused the run ({fatal}); check base_url, model and the API key variable"
    return info, problem
