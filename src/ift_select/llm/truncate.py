"""Fit a prompt into a model's window by shortening its cuttable spans (a response or answer field) from the
middle; the instruction, the rating or judging question and any prefill are kept whole.

Every span is capped at the same number of characters (the longest is cut first, a short one only when the
cap reaches it): its head and tail stay, joined by ``CUT_MARK``. The cap is the largest that fits, found by
bisection on a token count of the whole rendered prompt, so the result fits by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ift_select.llm.base import ChatRequest

CUT_MARK = " [...] "
Counter = Callable[[ChatRequest], int]


class PromptTooLong(ValueError):
    """The prompt does not fit even with every cuttable span cut to the mark."""


def _capped(request: ChatRequest, cap: int) -> ChatRequest:
    messages = [list(m) for m in request.messages]
    for index in sorted({i for i, _, _ in request.cuttable}):
        content = messages[index][1]
        out, last = [], 0
        for _, start, end in sorted(s for s in request.cuttable if s[0] == index):
            start = max(start, last)
            text = content[start:end]
            if len(text) > cap:
                head = (cap + 1) // 2
                text = text[:head] + CUT_MARK + text[len(text) - (cap - head):] if cap else CUT_MARK
            out += [content[last:start], text]
            last = max(last, end)
        out.append(content[last:])
        messages[index][1] = "".join(out)
    return replace(request, messages=tuple((r, c) for r, c in messages), cuttable=())


def fit(request: ChatRequest, count: Counter, limit: int) -> tuple[ChatRequest, int]:
    """``request`` shortened to at most ``limit`` prompt tokens, and the number of tokens cut (0: unchanged).
    Raises PromptTooLong, with both counts, when cutting every cuttable span is not enough."""
    full = count(request)
    if full <= limit:
        return request, 0
    longest = max((end - start for _, start, end in request.cuttable), default=0)
    smallest = _capped(request, 0)
    least = count(smallest) if request.cuttable else full
    if least > limit:
        what = "with its cuttable fields cut" if request.cuttable else "and none of it is marked cuttable"
        raise PromptTooLong(f"prompt is {full} tokens ({least} {what}), over the window of {limit}")
    best, kept, lo, hi = smallest, least, 0, longest  # the cap `lo` fits, `hi` does not
    tolerance = max(8, longest // 200)
    while hi - lo > tolerance:
        mid = (lo + hi) // 2
        candidate = _capped(request, mid)
        tokens = count(candidate)
        if tokens <= limit:
            best, kept, lo = candidate, tokens, mid
        else:
            hi = mid
    return best, full - kept


def byte_bound(request: ChatRequest, per_message: int = 64) -> int:
    """An upper bound of the prompt's tokens for byte-level tokenizers (each token covers at least one byte),
    with ``per_message`` tokens for the chat template's markers and a default system prompt."""
    return sum(len(c.encode("utf-8")) + per_message for _, c in request.messages) + per_message
