"""Build the grader's or judge's backend from its params section (score.* or judge.*)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ift_select.config import JudgeParams, ScoreParams
from ift_select.llm import Backend, make_backend


def backend_for(section: ScoreParams | JudgeParams, pricing: dict[str, Any]) -> Backend:
    if section.backend == "local":
        return make_backend("local", model=section.model, batch_size=section.batch_size,
                            precision=section.precision, max_length=section.max_length)
    settings = dataclasses.asdict(section.openai)
    return make_backend("openai", model=section.model, pricing=pricing, **settings)
