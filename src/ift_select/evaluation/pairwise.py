"""Pairwise judging of two arms' generations, in both orders, into the DESIGN.md judgment schema.

Every item is judged twice: order ``ab`` shows model_a's answer first, ``ba`` shows model_b's first. Columns
are always in model terms, whatever the order: ``score_a``/``score_b`` are the scores of model_a/model_b,
``verdict`` is ``a``/``b``/``tie`` (the better model), ``prob_a``/``prob_b``/``prob_tie`` the judge's
verdict-token probabilities when read. Two template kinds (see prompts/):

- ``scores`` (judge_pair_score*.txt, judge_reference.txt): each answer 1-10, two numbers on the first line. With
  a prefill (a trailing <<assistant>> turn, local backends) the judge reads the expected first score from the
  first-token probabilities over "1".."9" (a "1" counts as 10 when the judge wrote 10), then, in a second
  forward pass with the score the judge wrote (else the rounded expectation) put into the prefill, the expected
  second score. A prefill may hold ``{first}``: the first pass stops there, the second continues with the
  score and the rest of the prefill (judge_pair_score_prefill.txt: "Assistant 1: {first}\nAssistant 2: ");
  without it the second pass appends the score and a space. Without a prefill, or when the digits carry too
  little probability, the reply text is parsed.
- ``verdict`` (judge_mt_bench*.txt, the template mentions "[[A]]"): the probabilities of A/B/C after a "[["
  prefill give the verdict (arg max); otherwise the text's [[A]]/[[B]]/[[C]] is parsed.

A reply that cannot be read is ``unparsed`` (a failed request ``error``), counted, never a silent tie.
Vs-reference mode (CaR's protocol): ``reference_generations(tests)`` turns a test set's reference answers into
an opponent "arm" named ``reference``; judge an arm against it with prompts/judge_reference.txt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ift_select.core.errors import DataError
from ift_select.evaluation.parse import Kind, Parsed, parse_reply, parse_scores, verdict_from_scores
from ift_select.llm import Backend, ChatReply, ChatRequest, RequestCache, RunStats, run_requests
from ift_select.llm.templates import Template

ORDERS = ("ab", "ba")
VERDICT_TOKENS = ("A", "B", "C")
DIGITS = tuple(str(d) for d in range(1, 10))
REFERENCE_ARM = "reference"
FIRST = "{first}"  # in a scores template's prefill: where the first pass stops
GEN_COLUMNS = ("test_set", "item_id", "instruction", "input", "output")


@dataclass(frozen=True)
class Reading:
    parsed: Parsed
    method: str  # probs | text | ""
    status: str  # ok | unparsed | error
    probs: tuple[float, float, float] | None = None  # positional: P(first), P(second), P(tie)


def template_kind(template: Template) -> Kind:
    return "verdict" if "[[A]]" in template.text else "scores"


def prefill_of(messages: Sequence[tuple[str, str]]) -> str:
    return messages[-1][1] if messages and messages[-1][0] == "assistant" else ""


def question_text(instruction: str, input_text: str | None) -> str:
    return f"{instruction}\n\nInput: {input_text}" if input_text else instruction


def reference_generations(tests: pd.DataFrame) -> pd.DataFrame:
    """A generation frame whose outputs are the test items' reference answers (vs-reference mode).
    Items without a reference are left out; a test set with none is an error naming it."""
    refs = tests[tests["reference"].notna() & (tests["reference"].astype(str).str.strip() != "")]
    if refs.empty:
        sets = ", ".join(sorted(tests["test_set"].unique()))
        raise DataError(f"vs-reference mode: test set(s) {sets} have no reference answers")
    return pd.DataFrame({"test_set": refs["test_set"], "item_id": refs["id"].astype(str),
                         "instruction": refs["instruction"], "input": refs["input"].fillna(""),
                         "output": refs["reference"].astype(str)}).reset_index(drop=True)


def pair_items(gen_a: pd.DataFrame, gen_b: pd.DataFrame, arm_a: str, arm_b: str,
               tests: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per item both arms answered: question, output_a, output_b, category, reference."""
    for arm, frame in ((arm_a, gen_a), (arm_b, gen_b)):
        missing = [c for c in GEN_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"generations of {arm}: missing column(s) {', '.join(missing)}")
    key = ["test_set", "item_id"]
    a = gen_a.assign(item_id=gen_a["item_id"].astype(str))
    b = gen_b.assign(item_id=gen_b["item_id"].astype(str))[key + ["output"]]
    merged = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"), indicator=True)
    if arm_b != REFERENCE_ARM:  # a reference opponent may cover only some items
        lonely = merged[merged["_merge"] != "both"]
        if len(lonely):
            first = lonely.iloc[0]
            side = arm_a if first["_merge"] == "left_only" else arm_b
            raise DataError(f"{arm_a} vs {arm_b}: {len(lonely)} item(s) answered by one arm only, e.g. "
                            f"{first['test_set']}/{first['item_id']} only in {side}'s generations")
    merged = merged[merged["_merge"] == "both"].reset_index(drop=True)
    if merged.empty:
        raise DataError(f"{arm_a} vs {arm_b}: no item answered by both arms")
    items = pd.DataFrame({"test_set": merged["test_set"], "item_id": merged["item_id"],
                          "question": [question_text(i, n) for i, n in zip(merged["instruction"],
                                                                              merged["input"].fillna(""))],
                          "output_a": merged["output_a"].fillna("").astype(str),
                          "output_b": merged["output_b"].fillna("").astype(str),
                          "category": merged["category"] if "category" in merged else None,
                          "reference": None})
    if tests is not None:
        extra = tests.assign(item_id=tests["id"].astype(str)).reindex(columns=key + ["category", "reference"])
        items = items.drop(columns=["category", "reference"]).merge(extra, on=key, how="left")
    return items


def _expected(token_probs: dict[str, float] | None, tokens: Sequence[str], values: Sequence[float],
              min_mass: float) -> tuple[float, list[float]] | None:
    """(expected value, renormalised probabilities) over ``tokens``; None below ``min_mass``."""
    if not token_probs:
        return None
    probs = [token_probs.get(t, 0.0) for t in tokens]
    mass = sum(probs)
    if mass < min_mass or mass <= 0:
        return None
    norm = [p / mass for p in probs]
    return sum(v * p for v, p in zip(values, norm)), norm


def _read_text(text: str, kind: Kind, tie_margin: float) -> Reading:
    parsed = parse_reply(text, kind, tie_margin)
    return Reading(parsed, "text" if parsed.ok else "", "ok" if parsed.ok else "unparsed")


def _read_verdict(reply: ChatReply, prefill: str, min_mass: float, tie_margin: float) -> Reading:
    if reply.status != "ok":
        return Reading(Parsed(None, None, None), "", "error")
    got = _expected(reply.token_probs, VERDICT_TOKENS, (0, 0, 0), min_mass)
    if got is not None:
        p1, p2, pt = got[1]
        verdict = "1" if p1 >= max(p2, pt) else ("2" if p2 >= pt else "tie")
        return Reading(Parsed(None, None, verdict), "probs", "ok", (p1, p2, pt))  # type: ignore[arg-type]
    return _read_text(prefill + reply.text, "verdict", tie_margin)


def _digit_values(written: float | None) -> list[float]:
    """Values of the first digit "1".."9" of a score; "1" means 10 when the judge wrote 10 there."""
    return [10.0 if d == "1" and written == 10 else float(d) for d in DIGITS]


def _written(request: ChatRequest, reply: ChatReply, which: int) -> float | None:
    pair = parse_scores(prefill_of(request.messages) + reply.text)
    return pair[which] if pair else None


def _second_suffix(template: Template) -> str:
    """What follows the first score in the second pass's prefill ("\nAssistant 2: " or " ")."""
    prefill = prefill_of(template.render())
    return prefill.split(FIRST, 1)[1] if FIRST in prefill else " "


def _score_requests(requests: list[ChatRequest], replies: list[ChatReply], firsts: list[float],
                    suffix: str) -> list[ChatRequest]:
    """Second-pass requests: the prefill extended by the first score, one forward pass each."""
    out = []
    for req, reply, first in zip(requests, replies, firsts):
        written = _written(req, reply, 0)
        value = written if written is not None else round(first)
        messages = req.messages[:-1] + (("assistant", f"{prefill_of(req.messages)}{value:g}{suffix}"),)
        out.append(ChatRequest(messages=messages, max_tokens=0, temperature=req.temperature,
                               score_tokens=DIGITS))
    return out


def _read_scores(requests: list[ChatRequest], replies: list[ChatReply], template: Template, backend: Backend,
                 cache: RequestCache | None, min_mass: float, tie_margin: float) -> tuple[list[Reading], RunStats]:
    readings: list[Reading | None] = [None] * len(replies)
    firsts: dict[int, float] = {}
    for i, (req, reply) in enumerate(zip(requests, replies)):
        prefill = prefill_of(req.messages)
        if reply.status != "ok":
            readings[i] = Reading(Parsed(None, None, None), "", "error")
            continue
        got = _expected(reply.token_probs, DIGITS, _digit_values(_written(req, reply, 0)), min_mass) \
            if prefill and req.score_tokens else None
        if got is None:
            readings[i] = _read_text(prefill + reply.text, "scores", tie_margin)
        else:
            firsts[i] = got[0]
    stats = RunStats()
    todo = sorted(firsts)
    if todo:
        second_reqs = _score_requests([requests[i] for i in todo], [replies[i] for i in todo],
                                      [firsts[i] for i in todo], _second_suffix(template))
        second, stats = run_requests(backend, second_reqs, cache, desc="judge (second score)")
        stats.rows = 0
        for i, reply in zip(todo, second):
            got = _expected(reply.token_probs, DIGITS, _digit_values(_written(requests[i], replies[i], 1)), min_mass) \
                if reply.status == "ok" else None
            if got is None:  # second digit unreadable: fall back to the written reply
                readings[i] = _read_text(prefill_of(requests[i].messages) + replies[i].text, "scores", tie_margin)
                continue
            first, second_score = firsts[i], got[0]
            readings[i] = Reading(Parsed(first, second_score, verdict_from_scores(first, second_score, tie_margin)),
                                  "probs", "ok")
    return [r for r in readings if r is not None], stats


def build_requests(items: pd.DataFrame, template: Template, order: str, max_tokens: int) -> list[ChatRequest]:
    kind = template_kind(template)
    needs_ref = "{reference}" in template.text
    requests = []
    for row in items.itertuples(index=False):
        first, second = (row.output_a, row.output_b) if order == "ab" else (row.output_b, row.output_a)
        reference = "" if pd.isna(row.reference) else str(row.reference)
        if needs_ref and not reference:
            raise DataError(f"{template.path}: needs a reference answer, none for {row.test_set}/{row.item_id}")
        messages = template.render(question=row.question, answer_1=first, answer_2=second, reference=reference)
        if FIRST in prefill_of(messages):  # the first pass stops where the first score goes
            messages = messages[:-1] + (("assistant", prefill_of(messages).split(FIRST, 1)[0]),)
        # probabilities only right after a prefill: an unprefilled reply may start "Assistant A ..." or "8/10"
        tokens = (VERDICT_TOKENS if kind == "verdict" else DIGITS) if prefill_of(messages) else ()
        requests.append(ChatRequest(messages=messages, max_tokens=max_tokens, score_tokens=tokens))
    return requests


def _to_model_terms(reading: Reading, order: str) -> dict[str, object]:
    p = reading.parsed
    flip = order == "ba"
    s1, s2 = (p.second, p.first) if flip else (p.first, p.second)
    pos_to_model = {"1": "b" if flip else "a", "2": "a" if flip else "b", "tie": "tie"}
    probs = reading.probs
    pa, pb = ((probs[1], probs[0]) if flip else (probs[0], probs[1])) if probs else (math.nan, math.nan)
    return {"score_a": math.nan if s1 is None else s1, "score_b": math.nan if s2 is None else s2,
            "verdict": pos_to_model[p.verdict] if p.verdict else None,
            "prob_a": pa, "prob_b": pb, "prob_tie": probs[2] if probs else math.nan}


def judge_pair(gen_a: pd.DataFrame, gen_b: pd.DataFrame, arm_a: str, arm_b: str, backend: Backend,
               template: Template, cache: RequestCache | None, *, tests: pd.DataFrame | None = None,
               max_tokens: int = 24, min_prob_mass: float = 0.1, tie_margin: float = 0.5,
               orders: Sequence[str] = ORDERS, decision: str = "two_order") -> tuple[pd.DataFrame, RunStats]:
    """Judge every item both arms answered, in each of ``orders``. ``tests`` (test items: id, test_set,
    category, reference) adds categories and references. Returns the judgments (one row per item and order,
    DESIGN.md schema plus method/probabilities/lengths/tokens/error, and the ``decision`` rule that turns
    an item's two rows into its outcome) and the run's counts."""
    items = pair_items(gen_a, gen_b, arm_a, arm_b, tests)
    kind = template_kind(template)
    frames, total = [], RunStats()
    for order in orders:
        requests = build_requests(items, template, order, max_tokens)
        replies, stats = run_requests(backend, requests, cache, desc=f"judge {arm_a} vs {arm_b} ({order})")
        if kind == "verdict":
            readings = [_read_verdict(r, prefill_of(q.messages), min_prob_mass, tie_margin)
                        for q, r in zip(requests, replies)]
        else:
            readings, extra = _read_scores(requests, replies, template, backend, cache, min_prob_mass, tie_margin)
            stats.add(extra)
        total.add(stats)
        cols = [_to_model_terms(r, order) for r in readings]
        frames.append(pd.DataFrame({
            "test_set": items["test_set"], "item_id": items["item_id"], "category": items["category"],
            "model_a": arm_a, "model_b": arm_b, "order": order, **pd.DataFrame(cols).to_dict("series"),
            "method": [r.method for r in readings], "status": [r.status for r in readings],
            "raw": [prefill_of(q.messages) + r.text for q, r in zip(requests, replies)],
            "judge": f"{backend.name}|prompt:{template.sha}", "decision": decision,
            "error": [r.error for r in replies],
            "len_a": items["output_a"].str.len(), "len_b": items["output_b"].str.len(),
            "tokens_in": [r.tokens_in for r in replies], "tokens_out": [r.tokens_out for r in replies],
            "cost_usd": [r.cost_usd for r in replies],
        }))
    return pd.concat(frames, ignore_index=True), total
