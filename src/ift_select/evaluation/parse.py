"""Read a pairwise judge's reply: two scores (AlpaGasus/Vicuna prompt) or a verdict (MT-Bench, PandaLM).

Everything here is positional: "1" is the answer shown first, "2" the answer shown second; the caller maps
positions to models by the order it used. What is accepted:

- scores: "8 9", "8, 9", "8,9", "8/10 9/10", "Scores: 8.5 and 7", "[[8, 9]]", "Assistant 1: 8\\nAssistant 2: 9",
  reversed labels ("Assistant 2: 7, Assistant 1: 9" -> (9, 7)), "Answer B gets 6 ... Answer A gets 8",
  stray text around them. The first line is read first (the prompt asks for the scores there), then the reply.
- verdicts: "[[A]]"/"[[B]]"/"[[C]]" (the last one wins: a final verdict follows the explanation), a bare
  "1"/"2"/"Tie"/"A"/"B"/"C" first line (PandaLM), "Response 2 is better", "Assistant A is better than ...",
  "Both responses are ..." (tie), "Response 1 is incomplete ..." (the other one).

Anything else is ``None``: the caller records it as ``unparsed`` and counts it, never a silent tie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Position = Literal["1", "2", "tie"]
Kind = Literal["scores", "verdict"]

SCORE_MAX = 10.0
_NUM = r"(\d{1,2}(?:\.\d+)?)"
_LABEL = r"(?:assistant|answer|response|output|model)\s*[#(]?\s*(1|2|a|b)\b\)?"
_DENOM = re.compile(r"\s*(?:/\s*10(?:\.0)?|out\s+of\s+10)\b", re.IGNORECASE)
_GAP = r"(?:(?!assistant|answer|response|output|model)[^0-9\n]){0,40}?"  # never across another label
_LABELLED = re.compile(_LABEL + r"(?:'s)?" + _GAP + _NUM, re.IGNORECASE)
_BRACKETED = re.compile(r"\[\[\s*" + _NUM + r"\s*[,/ ]\s*" + _NUM + r"\s*\]\]")
_TWO_NUMS = re.compile(r"(?<![\d.])" + _NUM + r"(?:\s*,\s*|\s+and\s+|\s*;\s*|\s+)" + _NUM + r"(?![\d.])")
_LABELS = re.compile(r"(?:assistants?|answers?|responses?|outputs?|models?)\s*(?:[#(]?\s*(?:1|2|a|b)\b\)?"
                     r"(?:\s*(?:and|&|,)\s*(?:1|2|a|b)\b)?)", re.IGNORECASE)

_BRACKET_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_BARE_VERDICT = re.compile(r"^\W*(1|2|a|b|c|tie|draw)\W*$", re.IGNORECASE)
_BETTER = re.compile(_LABEL + r"\s+(?:is|was|provides|gives|offers)?\s*(?:clearly\s+|slightly\s+|much\s+)?"
                     r"(?:better|superior|preferred|preferable|the\s+better|more\s+(?:accurate|helpful|"
                     r"relevant|complete|detailed|appropriate|concise|correct))", re.IGNORECASE)
_WORSE = re.compile(_LABEL + r"\s+(?:is|was)\s+(?:worse|inferior|incomplete|incorrect|irrelevant|wrong|"
                    r"not\s+(?:correct|relevant|helpful|complete|accurate))", re.IGNORECASE)
_TIE = re.compile(r"^\W*(?:both\s+(?:responses|answers|assistants|outputs)|neither\s+(?:response|answer)|"
                  r"(?:it'?s\s+a\s+)?tie\b|they\s+are\s+(?:equally|equivalent|the\s+same))", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    """A reply read positionally: ``first``/``second`` scores (None for a verdict-only reply) and the
    verdict (None when nothing could be read)."""

    first: float | None
    second: float | None
    verdict: Position | None

    @property
    def ok(self) -> bool:
        return self.verdict is not None


UNPARSED = Parsed(None, None, None)


def _label_pos(label: str) -> str:
    return "1" if label.lower() in ("1", "a") else "2"


def _in_range(*values: float) -> bool:
    return all(0.0 <= v <= SCORE_MAX for v in values)


def verdict_from_scores(first: float, second: float, tie_margin: float = 0.5) -> Position:
    """'1' when the first answer's score is higher by at least ``tie_margin``, '2' the mirror, else 'tie'.
    With integer scores a margin below 1 means "equal scores tie"."""
    if abs(first - second) < tie_margin:
        return "tie"
    return "1" if first > second else "2"


def parse_scores(text: str) -> tuple[float, float] | None:
    """Two scores (first answer, second answer) from a reply, or None."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    labelled: dict[str, float] = {}
    for match in _LABELLED.finditer(text):
        labelled.setdefault(_label_pos(match.group(1)), float(match.group(2)))
    if len(labelled) == 2 and _in_range(*labelled.values()):
        return labelled["1"], labelled["2"]
    for chunk in [*lines, text]:  # line by line (first line first), then across lines ("8\n9")
        for pattern in (_BRACKETED, _TWO_NUMS):
            match = pattern.search(_DENOM.sub("", _LABELS.sub(" ", chunk)))
            if match:
                pair = float(match.group(1)), float(match.group(2))
                if _in_range(*pair):
                    return pair
    return None


def parse_verdict(text: str) -> Position | None:
    """'1', '2' or 'tie' from a verdict-style reply, or None."""
    text = text.strip()
    if not text:
        return None
    brackets = _BRACKET_VERDICT.findall(text)
    if brackets:
        return {"A": "1", "B": "2", "C": "tie"}[brackets[-1]]  # type: ignore[return-value]
    first_line = text.splitlines()[0]
    bare = _BARE_VERDICT.match(first_line)
    if bare:
        token = bare.group(1).lower()
        return "tie" if token in ("c", "tie", "draw") else _label_pos(token)  # type: ignore[return-value]
    better = _BETTER.search(text)  # "Both are fine, but Response 2 is better" is a verdict for 2
    if better:
        return _label_pos(better.group(1))  # type: ignore[return-value]
    if _TIE.search(first_line):
        return "tie"
    worse = _WORSE.search(text)
    if worse:
        return "2" if _label_pos(worse.group(1)) == "1" else "1"
    return None


def parse_reply(text: str, kind: Kind, tie_margin: float = 0.5) -> Parsed:
    """Read a reply of either kind: the template's own format first, then the other one (a score judge that
    answers "Assistant 2 is better" still gives a verdict; a verdict judge that answers "8 9" too)."""
    readers = (_read_scores, _read_verdict) if kind == "scores" else (_read_verdict, _read_scores)
    for reader in readers:
        parsed = reader(text, tie_margin)
        if parsed.ok:
            return parsed
    return UNPARSED


def _read_scores(text: str, tie_margin: float) -> Parsed:
    pair = parse_scores(text)
    return Parsed(pair[0], pair[1], verdict_from_scores(*pair, tie_margin)) if pair else UNPARSED


def _read_verdict(text: str, tie_margin: float) -> Parsed:
    return Parsed(None, None, parse_verdict(text))
