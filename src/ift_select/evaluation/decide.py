"""How an item's two judgments (order ab: model_a shown first; ba: model_b first) become one outcome.

- ``two_order`` (the papers' rule): win = model_a wins both orders, or wins one and ties the other; lose = the
  mirror; tie = anything else (two ties, or one win each: the judge contradicted itself when the answers
  swapped places).
- ``debiased`` (both-order logprob debiasing): compare P(a better | a first) with P(a better | a second)
  instead of two arg maxes. Per order, model_a's advantage in log-odds is d = log P(a) - log P(b) over the
  verdict tokens. A position bias b adds +b when a is first and -b when a is second, so the mean
  m = (d_ab + d_ba) / 2 cancels it exactly: win when m > ``tie_band``, lose when m < -``tie_band``, tie between.
  An item whose probabilities are missing in an order (text replies) falls back to ``two_order``.

Incomplete (an order missing, unparsed or failed) is never a tie: such items are left out of every rate.
"""

from __future__ import annotations

import math
from typing import Literal

Decision = Literal["two_order", "debiased"]
DECISIONS: tuple[str, ...] = ("two_order", "debiased")
EPS = 1e-6


def two_order(ab: str | None, ba: str | None) -> str:
    if ab is None or ba is None:
        return "incomplete"
    votes = (ab, ba)
    if "a" in votes and "b" not in votes:
        return "win"
    if "b" in votes and "a" not in votes:
        return "lose"
    return "tie"


def log_odds(prob_a: float, prob_b: float) -> float:
    """log P(a) - log P(b), NaN when either is unknown."""
    if prob_a is None or prob_b is None or math.isnan(prob_a) or math.isnan(prob_b):
        return math.nan
    return math.log(prob_a + EPS) - math.log(prob_b + EPS)


def debiased(ab: str | None, ba: str | None, margin: float, tie_band: float = 0.0) -> str:
    """The outcome from the mean log-odds ``margin`` (NaN: fall back to the two-order rule)."""
    if ab is None or ba is None:
        return "incomplete"
    if math.isnan(margin):
        return two_order(ab, ba)
    if margin > tie_band:
        return "win"
    if margin < -tie_band:
        return "lose"
    return "tie"
