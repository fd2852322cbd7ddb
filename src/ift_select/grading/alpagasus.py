"""The AlpaGasus grader: rate every (instruction, input, response) triplet 0-5.

Two scores per row: ``score``, the number the grader wrote ("4.5" is 4.5), and ``score_expected``, the
probability-weighted score over the whole number (``grading.expected``) when the backend reports token
probabilities with enough mass on the digits, else the written number. A reply without a number gets one retry
with a short reminder of the format and is then kept as ``unparsed`` (score NaN): never a silent 0. Every
row that is not ok says why in ``error``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

from ift_select.grading.check import check_request, checked_score, p_correct
from ift_select.grading.expected import SCALE, TOP, RowState, continue_digits, first_digit
from ift_select.llm import Backend, ChatReply, ChatRequest, RequestCache, RunStats, run_requests
from ift_select.llm.runner import failure_message
from ift_select.llm.templates import Template

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


@dataclass(frozen=True)
class Rating:
    score: float  # the number the grader wrote (NaN: none)
    expected: float  # probability-weighted over the whole number (NaN: no usable probabilities nor text)
    status: str  # ok | unparsed | error
    method: str  # how ``expected`` was read: probs | text | ""
    error: str  # why, for error and unparsed rows


def rating_requests(pool: pd.DataFrame, template: Template, dimension: str, max_tokens: int) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=template.render(instruction=row.instruction, input=row.input or "", response=row.output,
                                     dimension=dimension),
            max_tokens=max_tokens,
            score_tokens=SCALE,
            logprobs=TOP,
        )
        for row in pool.itertuples(index=False)
    ]


def with_reminder(request: ChatRequest, reply: ChatReply) -> ChatRequest:
    messages = request.messages + (("assistant", reply.text), ("user", REMINDER))
    return ChatRequest(messages=messages, max_tokens=request.max_tokens, temperature=request.temperature,
                       score_tokens=request.score_tokens, logprobs=request.logprobs)


def rate(reply: ChatReply, state: RowState | None, min_mass: float) -> Rating:
    if reply.status != "ok":
        return Rating(math.nan, math.nan, "error", "", reply.error or "error (no reason given)")
    written = parse_score(reply.text)
    expected = state.expected() if _has_probs(state, min_mass) else None
    method = "probs" if expected is not None else "text" if written is not None else ""
    value = expected if expected is not None else written
    if value is None:
        return Rating(math.nan, math.nan, "unparsed", "", "no score in the reply")
    return Rating(math.nan if written is None else written, value, "ok", method, "")


def _has_probs(state: RowState | None, min_mass: float) -> bool:
    return state is not None and state.mass >= min_mass


def continues_prefill(backend: Backend) -> bool:
    """Whether follow-ups that continue a reply reach the model (OpenAI's own API drops a prefill)."""
    return getattr(backend, "prefill", "continue") != "drop"


@dataclass
class Graded:
    """Rows' rating replies: the first one (its attempts), the one the score is read from (a format reminder's
    when the first had no number), the raw text, every reply a row paid for, the digit probabilities, and the
    correctness check's reply (None: no check asked)."""
    replies: list[ChatReply] = field(default_factory=list)
    scored: list[ChatReply] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    spent: list[list[ChatReply]] = field(default_factory=list)
    states: list[RowState | None] = field(default_factory=list)
    checks: list[ChatReply | None] = field(default_factory=list)
    followups: int = 0

    def extend(self, other: Graded) -> None:
        for name in ("replies", "scored", "raw", "spent", "states", "checks"):
            getattr(self, name).extend(getattr(other, name))
        self.followups += other.followups


def grade_rows(backend: Backend, requests: list[ChatRequest], cache: RequestCache | None, stats: RunStats,
               desc: str, min_prob_mass: float, fractions: bool, check: str | None = None) -> Graded:
    """Rate ``requests`` (each followed by its correctness check when ``check`` is a question, so the server
    finds the row's prompt still cached), give unreadable replies the format reminder, then ask the fractional
    follow-ups."""
    prefill = continues_prefill(backend)
    sent = [r for request in requests
            for r in ((request, check_request(request, check, prefill)) if check else (request,))]
    answered, first_stats = run_requests(backend, sent, cache, desc=desc)
    stats.add(first_stats)
    replies = answered[0::2] if check else answered
    graded = Graded(list(replies), list(replies), [r.text for r in replies], [[r] for r in replies])
    graded.checks = list(answered[1::2]) if check else [None] * len(replies)
    for i, reply in enumerate(graded.checks):
        if reply is not None:
            graded.raw[i] += "\n[check] " + reply.text
            graded.spent[i].append(reply)
    used = list(requests)
    retry_idx = [i for i, r in enumerate(replies) if r.status == "ok" and parse_score(r.text) is None and
                 not _has_probs(first_digit(requests[i], r), min_prob_mass)]
    if retry_idx:
        retries = [with_reminder(requests[i], replies[i]) for i in retry_idx]
        retry_replies, retry_stats = run_requests(backend, retries, cache, desc="score (format reminder)")
        stats.add(retry_stats)
        for i, request, reply in zip(retry_idx, retries, retry_replies):
            graded.raw[i] += "\n[retry] " + reply.text
            graded.spent[i].append(reply)
            if reply.status == "ok" and parse_score(reply.text) is not None:
                graded.scored[i], used[i] = reply, request
    graded.states = [first_digit(request, reply) for request, reply in zip(used, graded.scored)]
    if fractions and continues_prefill(backend):

        def send(batch: list[ChatRequest]) -> list[ChatReply]:
            out, more = run_requests(backend, batch, cache, desc="score (fractions)")
            stats.add(more)
            return out

        graded.followups = continue_digits([s if _has_probs(s, min_prob_mass) else None for s in graded.states],
                                           send)
    for row, state in zip(graded.spent, graded.states):
        row.extend(state.replies if state is not None else [])
    return graded


def score_pool(
    pool: pd.DataFrame,
    backend: Backend,
    template: Template,
    cache: RequestCache | None,
    dimension: str = "accuracy",
    max_tokens: int = 24,
    min_prob_mass: float = 0.1,
    fractions: bool = True,
    check: str | None = None,
) -> tuple[pd.DataFrame, RunStats]:
    """Grade every pool row. Returns the scores frame (DESIGN.md contract) and the run's counts.
    ``check``: a yes/no question asked right after each rating (``grading.check``), adding ``p_correct`` and
    ``score_checked``.
    ``fractions``: read each likely digit's fractional continuation (short follow-up requests). A backend
    with a ``followup_window`` (llama.cpp) gets its rows that many at a time, each window's follow-ups right
    after its ratings, while the server's prompt cache still holds those prompts."""
    requests = rating_requests(pool, template, dimension, max_tokens)
    window = getattr(backend, "followup_window", None) or max(len(requests), 1)
    stats = RunStats()
    graded = Graded()
    for start in range(0, len(requests), window):
        part = f" {start // window + 1}/{math.ceil(len(requests) / window)}" if window < len(requests) else ""
        graded.extend(grade_rows(backend, requests[start:start + window], cache, stats,
                                 f"score ({dimension}){part}", min_prob_mass, fractions, check))
    stats.rows = len(pool)
    ratings = [rate(reply, state, min_prob_mass) for reply, state in zip(graded.scored, graded.states)]
    ratings = [checked_error(r, c) for r, c in zip(ratings, graded.checks)]
    scorer = f"{backend.name}|prompt:{template.sha}|{dimension}"
    frame = pd.DataFrame(
        {
            "id": pool["id"].to_numpy(),
            "score": [r.score for r in ratings],
            "score_expected": [r.expected for r in ratings],
            "status": [r.status for r in ratings],
            "error": [r.error for r in ratings],
            "method": [r.method for r in ratings],
            "raw": graded.raw,
            "scorer": scorer,
            "attempts": [attempts(rep) for rep in graded.replies],
            "tokens_in": [sum(r.tokens_in for r in row) for row in graded.spent],
            "tokens_out": [sum(r.tokens_out for r in row) for row in graded.spent],
            "cost_usd": [sum(r.cost_usd for r in row) for row in graded.spent],
        }
    )
    if check:
        p_yes = [p_correct(c, min_prob_mass) if c is not None else math.nan for c in graded.checks]
        frame.insert(3, "p_correct", p_yes)
        frame.insert(4, "score_checked", [checked_score(r.expected, p) for r, p in zip(ratings, p_yes)])
    frame.attrs["followups"] = graded.followups
    return frame, stats


def checked_error(rating: Rating, check: ChatReply | None) -> Rating:
    """A row whose correctness check failed is an error row, its reason kept: its score lacks half its
    evidence."""
    if check is None or check.status == "ok" or rating.status == "error":
        return rating
    return Rating(rating.score, rating.expected, "error", rating.method,
                  f"correctness check: {check.error or 'error (no reason given)'}")


def attempts(reply: ChatReply) -> int:
    """Requests sent for a reply (1 + retries after errors); cached replies count as they were made."""
    return max(reply.attempts, int(reply.extra.get("attempts", 1)))


def _check_summary(p_yes: pd.Series, ok: pd.Series) -> dict:
    """Rows whose correctness check was read, ok rows whose check could not be read, and the mean P(yes)."""
    read = p_yes.notna()
    return {"checked": int(read.sum()), "check_unread": int((ok & ~read).sum()),
            "mean_p_correct": round(float(p_yes.mean()), 4) if read.any() else None}


def summarize(scores: pd.DataFrame, stats: RunStats) -> dict:
    ok = scores["status"] == "ok"
    errors = scores[scores["status"] == "error"]["error"]
    return {
        **stats.to_dict(),
        "scored": int(ok.sum()),
        "no_written_score": int((ok & scores["score"].isna()).sum()),  # ok from probabilities alone
        "unparsed": int((scores["status"] == "unparsed").sum()),
        "errors": int(len(errors)),
        "first_error": str(errors.iloc[0]) if len(errors) else None,
        "retries": int((scores["attempts"] - 1).clip(lower=0).sum()),
        "fraction_requests": int(scores.attrs.get("followups", 0)),
        **(_check_summary(scores["p_correct"], ok) if "p_correct" in scores else {}),
        "by_method": {k: int(v) for k, v in scores["method"].value_counts().items() if k},
        "mean_score": round(float(scores.loc[ok, "score"].mean()), 4) if ok.any() else None,
        "mean_score_expected": (round(float(scores["score_expected"].mean()), 4)
                                if scores["score_expected"].notna().any() else None),
    }


def endpoint(backend: Backend) -> str:
    """The backend's name and, for servers, its URL without credentials."""
    url = getattr(backend, "base_url", None)
    if not url:
        return backend.name
    from ift_select.llm.urls import public_url

    return f"{backend.name} at {public_url(url)}"


def check_failures(scores: pd.DataFrame, endpoint: str, max_error_rate: float) -> str | None:
    """Why a grading run must fail (no row ok, or errors above ``max_error_rate``); None when it may stand."""
    return failure_message(scores["status"].tolist(), scores["error"].tolist(), max_error_rate, endpoint,
                           "score.max_error_rate", "rows", nothing_ok="no row was graded")


GRADER_COLUMNS = ("score", "score_expected", "status", "error", "method", "raw", "scorer", "attempts", "tokens_in",
                  "tokens_out", "cost_usd")


CHECK_COLUMNS = ("p_correct", "score_checked")



def with_grader_columns(scores: pd.DataFrame, extra: pd.DataFrame, name: str) -> pd.DataFrame:
    """Add another grader's columns to ``scores`` as ``<column>_<name>`` (score_helpfulness, ...), by id."""
    columns = [*GRADER_COLUMNS, *(c for c in CHECK_COLUMNS if c in extra)]
    renamed = extra[["id", *columns]].rename(columns={c: f"{c}_{name}" for c in columns})
    return scores.merge(renamed, on="id", how="left", validate="one_to_one")
