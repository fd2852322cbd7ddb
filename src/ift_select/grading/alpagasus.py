"""The AlpaGasus grader: rate every (instruction, input, response) triplet 0-5.

The score is the expected value of the first reply token over "0".."5" when the backend reports those
probabilities (local models; OpenAI-compatible endpoints with top_logprobs) and they carry enough mass;
otherwise the reply text is parsed. A reply that cannot be read gets one retry with a short reminder of the
format and is then kept as ``unparsed`` (score NaN): never a silent 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from ift_select.llm import Backend, ChatReply, ChatRequest, RequestCache, RunStats, run_requests
from ift_select.llm.templates import Template

SCORE_TOKENS = tuple(str(k) for k in range(6))
SCALE_MAX = 5.0
REMINDER = "Reply with the score only: a single number from 0 to 5."

_NUM = r"(\d+(?:\.\d+)?)"
_PATTERNS = [
    re.compile(rf"\b(?:score|rating|rated|rate)\b[^0-9\n]{{0,20}}{_NUM}", re.IGNORECASE),
    re.compile(rf"{_NUM}\s*(?:/\s*5(?:\.0)?\b|out\s+of\s+5\b|points?\b)", re.IGNORECASE),
    re.compile(rf"^\s*\**\s*{_NUM}\s*\**\s*[.,;:]?\s*$"),
    re.compile(rf"^\s*{_NUM}\b"),
]


def parse_score(text: str, scale_max: float = SCALE_MAX) -> float | None:
    """A score in [0, scale_max] from a grader's reply, or None. Reads the first non-empty line first
    (the prompt asks for the score there), then the whole reply."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    for chunk in ([lines[0]] if lines else []) + ([text] if len(lines) > 1 else []):
        for pattern in _PATTERNS:
            match = pattern.search(chunk)
            if match:
                value = float(match.group(1))
                if 0.0 <= value <= scale_max:
                    return value
    return None


def expected_score(token_probs: dict[str, float] | None, min_mass: float) -> float | None:
    """Probability-weighted mean over the score tokens, renormalised; None when their mass is too small."""
    if not token_probs:
        return None
    mass = sum(token_probs.values())
    if mass < min_mass or mass <= 0:
        return None
    return sum(float(tok) * p for tok, p in token_probs.items()) / mass


@dataclass(frozen=True)
class Rating:
    score: float
    status: str  # ok | unparsed | error
    method: str  # probs | text | retry | ""


def read_reply(reply: ChatReply, min_mass: float) -> Rating:
    if reply.status != "ok":
        return Rating(math.nan, "error", "")
    value = expected_score(reply.token_probs, min_mass)
    if value is not None:
        return Rating(value, "ok", "probs")
    value = parse_score(reply.text)
    if value is not None:
        return Rating(value, "ok", "text")
    return Rating(math.nan, "unparsed", "")


def rating_requests(pool: pd.DataFrame, template: Template, dimension: str, max_tokens: int) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=template.render(instruction=row.instruction, input=row.input or "", response=row.output,
                                     dimension=dimension),
            max_tokens=max_tokens,
            score_tokens=SCORE_TOKENS,
        )
        for row in pool.itertuples(index=False)
    ]


def with_reminder(request: ChatRequest, reply: ChatReply) -> ChatRequest:
    messages = request.messages + (("assistant", reply.text), ("user", REMINDER))
    return ChatRequest(messages=messages, max_tokens=request.max_tokens, temperature=request.temperature,
                       score_tokens=request.score_tokens)


def score_pool(
    pool: pd.DataFrame,
    backend: Backend,
    template: Template,
    cache: RequestCache | None,
    dimension: str = "accuracy",
    max_tokens: int = 24,
    min_prob_mass: float = 0.1,
) -> tuple[pd.DataFrame, RunStats]:
    """Grade every pool row. Returns the scores frame (DESIGN.md contract) and the run's counts."""
    requests = rating_requests(pool, template, dimension, max_tokens)
    replies, stats = run_requests(backend, requests, cache, desc=f"score ({dimension})")
    ratings = [read_reply(r, min_prob_mass) for r in replies]

    retry_idx = [i for i, rating in enumerate(ratings) if rating.status == "unparsed"]
    if retry_idx:
        retries = [with_reminder(requests[i], replies[i]) for i in retry_idx]
        retry_replies, retry_stats = run_requests(backend, retries, cache, desc="score (format reminder)")
        stats.add(retry_stats)
        stats.rows -= len(retry_idx)
        for i, reply in zip(retry_idx, retry_replies):
            rating = read_reply(reply, min_prob_mass)
            if rating.status == "ok":
                ratings[i] = Rating(rating.score, "ok", "retry")
                replies[i] = ChatReply(text=replies[i].text + "\n[retry] " + reply.text, status="ok",
                                       tokens_in=replies[i].tokens_in + reply.tokens_in,
                                       tokens_out=replies[i].tokens_out + reply.tokens_out,
                                       cost_usd=replies[i].cost_usd + reply.cost_usd)

    scorer = f"{backend.name}|prompt:{template.sha}|{dimension}"
    frame = pd.DataFrame(
        {
            "id": pool["id"].to_numpy(),
            "score": [r.score for r in ratings],
            "status": [r.status for r in ratings],
            "error": [rep.error if r.status == "error" else None for r, rep in zip(ratings, replies)],
            "method": [r.method for r in ratings],
            "raw": [rep.text for rep in replies],
            "scorer": scorer,
            "tokens_in": [rep.tokens_in for rep in replies],
            "tokens_out": [rep.tokens_out for rep in replies],
            "cost_usd": [rep.cost_usd for rep in replies],
        }
    )
    return frame, stats


def summarize(scores: pd.DataFrame, stats: RunStats) -> dict:
    ok = scores[scores["status"] == "ok"]["score"]
    return {
        **stats.to_dict(),
        "scored": int((scores["status"] == "ok").sum()),
        "unparsed": int((scores["status"] == "unparsed").sum()),
        "errors": int((scores["status"] == "error").sum()),
        "by_method": {k: int(v) for k, v in scores["method"].value_counts().items() if k},
        "mean_score": round(float(ok.mean()), 4) if len(ok) else None,
    }


GRADER_COLUMNS = ("score", "status", "method", "raw", "scorer", "tokens_in", "tokens_out", "cost_usd")


def with_grader_columns(scores: pd.DataFrame, extra: pd.DataFrame, name: str) -> pd.DataFrame:
    """Add another grader's columns to ``scores`` as ``<column>_<name>`` (score_helpfulness, ...), by id."""
    renamed = extra[["id", *GRADER_COLUMNS]].rename(columns={c: f"{c}_{name}" for c in GRADER_COLUMNS})
    return scores.merge(renamed, on="id", how="left", validate="one_to_one")
