"""A yes/no correctness check per row that shares the rating prompt, and the score it corrects.

The check is the rating request with its prefill ("Score: ") replaced by a question (``score.check``), so a
server with a prompt cache (llama.cpp, vLLM) evaluates only the question when the check directly follows its
own row's rating on the same slot. One reply token is read: P(yes) / (P(yes) + P(no)) over its alternatives.

    score_checked = P(yes) * score_expected + (1 - P(yes)) * min(score_expected, 2)

is the rubric's own rule ("a response with any error gets 2 or less") applied with the check's confidence:
a row the check believes wrong cannot stay above 2. A check without readable probabilities falls back to its
written yes/no, and without either leaves ``p_correct`` NaN and ``score_checked`` equal to ``score_expected``.
"""

from __future__ import annotations

import math

from ift_select.grading.expected import TOP
from ift_select.llm.base import ChatReply, ChatRequest

ERROR_CAP = 2.0  # the rubric's ceiling for a response with an error


def check_request(rating: ChatRequest, question: str, prefill: bool = True) -> ChatRequest:
    """``rating`` with its trailing prefill (if any) replaced by ``question`` as the reply's start, or, for a
    backend that drops prefills (OpenAI's own API), as a last user turn."""
    messages = rating.messages[:-1] if rating.messages and rating.messages[-1][0] == "assistant" else rating.messages
    return ChatRequest(messages=messages + (("assistant" if prefill else "user", question),), max_tokens=1,
                       temperature=rating.temperature, logprobs=TOP, cuttable=rating.cuttable)


def _answer(token: str) -> str:
    return token.strip().strip(".,:;!").lower()


def p_correct(reply: ChatReply, min_mass: float) -> float:
    """P(yes) among yes/no at the reply's first token; the written answer when the probabilities miss; NaN."""
    if reply.status != "ok":
        return math.nan
    if reply.positions:
        dist = reply.positions[0][1]
        yes = sum(p for t, p in dist.items() if _answer(t) == "yes")
        no = sum(p for t, p in dist.items() if _answer(t) == "no")
        if yes + no >= min_mass:
            return yes / (yes + no)
    words = reply.text.split()
    written = _answer(words[0]) if words else ""
    return 1.0 if written == "yes" else 0.0 if written == "no" else math.nan


def checked_score(expected: float, p_yes: float) -> float:
    if math.isnan(p_yes) or math.isnan(expected):
        return expected
    return p_yes * expected + (1.0 - p_yes) * min(expected, ERROR_CAP)
