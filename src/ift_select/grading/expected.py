"""The expected AlpaGasus score over the whole number, exact at "4.5".

    score_expected = sum_d P(d) * min(5, d + P("." | d) * E[f | "d."] / 10) / sum_d P(d),   d in 0..5

P(d) is the first score digit's distribution. For each digit with at least ``MIN_SHARE`` of the digit mass
(and below 5: nothing above 5 counts), the fractional continuation is read from the reply's own positions when
the backend returns them (the written digit), otherwise from follow-up requests that continue the reply with
the digit as a prefill ("Score: 4", then "Score: 4."): with a prompt cache (llama.cpp, vLLM) each costs a few
prompt tokens. Backends that return only first-token probabilities (``ChatReply.token_probs``) are read the
same way, one position per follow-up; digits never continued count as whole numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ift_select.llm.base import ChatReply, ChatRequest

SCALE = tuple(str(d) for d in range(6))
FRACTIONS = tuple(str(d) for d in range(10))
DOT = (".",)
TOP = 20  # alternatives per position (the OpenAI API's maximum)
MIN_SHARE = 0.1  # digits with less of the digit mass are not continued (they count as whole numbers)
MIN_DOT = 0.02  # below this P("." | d) the fraction is not asked for
_DIRECT = re.compile(r"^\.([0-9])$")  # a tokenizer that spells ".5" as one token

Dist = dict[str, float]
Send = Callable[[list[ChatRequest]], list[ChatReply]]


def position(reply: ChatReply, k: int) -> Dist | None:
    """Token -> probability at generated position ``k`` (positions, else first-token score probabilities)."""
    if reply.positions is not None:
        return reply.positions[k][1] if k < len(reply.positions) else None
    return reply.token_probs if k == 0 else None


def _sum(dist: Dist, keys: Sequence[str]) -> Dist:
    out = dict.fromkeys(keys, 0.0)
    for token, p in dist.items():
        key = token.strip()
        if key in out:
            out[key] += p
    return out


def dot_and_fraction(dist: Dist) -> tuple[float, Dist]:
    """P("." next) and P(".f" as one token) per f, at the position after a digit."""
    direct: Dist = {}
    for token, p in dist.items():
        match = _DIRECT.match(token.strip())
        if match:
            direct[match.group(1)] = direct.get(match.group(1), 0.0) + p
    return _sum(dist, DOT)["."], direct


@dataclass
class Continuation:
    """What is known about one digit's continuation."""

    p_dot: float | None = None
    direct: Dist = field(default_factory=dict)
    fraction: Dist | None = None  # P(f | "d."), normalised

    def value(self, digit: int) -> float:
        v = float(digit)
        if self.p_dot and self.fraction:
            v += self.p_dot * sum(p * int(f) for f, p in self.fraction.items()) / 10
        v += sum(p * int(f) for f, p in self.direct.items()) / 10
        return min(v, float(len(SCALE) - 1))


def normalised(dist: Dist) -> Dist | None:
    total = sum(dist.values())
    return {k: v / total for k, v in dist.items()} if total > 0 else None


@dataclass
class RowState:
    """One row's first score digit and its continuations."""

    base: ChatRequest  # the request whose reply holds the score
    prefix: str  # generated text before the digit
    digits: Dist  # P(d) for d in 0..5
    written: str | None  # the digit the reply wrote, when positions say
    conts: dict[str, Continuation] = field(default_factory=dict)
    replies: list[ChatReply] = field(default_factory=list)  # its follow-ups (tokens, cost)

    @property
    def mass(self) -> float:
        return sum(self.digits.values())

    def wanted(self) -> list[str]:
        """Digits worth continuing (share >= MIN_SHARE, below the top of the scale)."""
        mass = self.mass
        return [d for d, p in self.digits.items() if mass > 0 and p / mass >= MIN_SHARE and d != SCALE[-1]]

    def expected(self) -> float | None:
        if self.mass <= 0:
            return None
        return sum(p * self.conts.get(d, Continuation()).value(int(d)) for d, p in self.digits.items()) / self.mass


def first_digit(request: ChatRequest, reply: ChatReply) -> RowState | None:
    """The score digit's distribution: at the first generated digit (positions), else at the first token."""
    if reply.status != "ok":
        return None
    if reply.positions is None:
        return RowState(request, "", _sum(reply.token_probs, SCALE), None) if reply.token_probs else None
    for k, (token, alternatives) in enumerate(reply.positions):
        if token.strip() in FRACTIONS:
            state = RowState(request, "".join(t for t, _ in reply.positions[:k]), _sum(alternatives, SCALE),
                             token.strip())
            after = reply.positions[k + 1:]
            if state.written in state.digits and after:
                p_dot, direct = dot_and_fraction(after[0][1])
                fraction = normalised(_sum(after[1][1], FRACTIONS)) if after[0][0].strip() == "." and len(after) > 1 else None
                state.conts[state.written] = Continuation(p_dot, direct, fraction)
            return state
    # no digit was generated: the first token's probabilities over the score tokens, where the backend read them
    return RowState(request, "", _sum(reply.token_probs, SCALE), None) if reply.token_probs else None


def follow_up(state: RowState, text: str, score_tokens: tuple[str, ...], max_tokens: int) -> ChatRequest:
    """The row's request with the reply so far (``text`` after the prefill) as the assistant's prefill."""
    messages = state.base.messages
    prefill = ""
    if messages and messages[-1][0] == "assistant":
        messages, prefill = messages[:-1], messages[-1][1]
    return ChatRequest(messages=messages + (("assistant", prefill + state.prefix + text),), max_tokens=max_tokens,
                       temperature=0.0, score_tokens=score_tokens, logprobs=TOP)


def continue_digits(states: Sequence[RowState | None], send: Send) -> int:
    """Fill every row's wanted continuations with follow-up requests through ``send``; returns how many."""
    sent = 0
    ask = [(s, d) for s in states if s is not None for d in s.wanted() if d not in s.conts]
    replies = send([follow_up(s, d, DOT, 2) for s, d in ask]) if ask else []
    sent += len(ask)
    for (s, d), reply in zip(ask, replies):
        s.replies.append(reply)
        dist = position(reply, 0) if reply.status == "ok" else None
        if dist is None:
            continue  # counted as a whole number
        p_dot, direct = dot_and_fraction(dist)
        fraction = None
        if reply.positions and reply.positions[0][0].strip() == "." and len(reply.positions) > 1:
            fraction = normalised(_sum(reply.positions[1][1], FRACTIONS))
        s.conts[d] = Continuation(p_dot, direct, fraction)
    need = [(s, d) for s in states if s is not None for d, c in s.conts.items()
            if c.fraction is None and (c.p_dot or 0.0) >= MIN_DOT]
    replies = send([follow_up(s, d + ".", FRACTIONS, 1) for s, d in need]) if need else []
    sent += len(need)
    for (s, d), reply in zip(need, replies):
        s.replies.append(reply)
        dist = position(reply, 0) if reply.status == "ok" else None
        s.conts[d].fraction = normalised(_sum(dist, FRACTIONS)) if dist else None
    return sent
