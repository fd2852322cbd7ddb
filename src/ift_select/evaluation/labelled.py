"""Labelled response pairs that measure a judge: PandaLM's format, or the same fields with one ``label``.

A file is a JSON list (PandaLM's testset-v1.json) or JSON Lines (data/sample/judge_pairs.jsonl). Each record:
``instruction``, ``input`` (optional), ``response1``, ``response2``, ``idx`` (optional: the record number) and
either ``annotator1..3`` (PandaLM: 0 tie, 1 = response1 better, 2 = response2 better; the label is the 2-of-3
majority) or ``label`` (0/1/2). Other fields (``flaw``, ``category``, ``cmp_key``) are kept as columns.

JSON booleans: 6 PandaLM responses (items 157-164) are JSON ``true``, the answer to "Verify the correctness of
the given statement". They become the strings "True"/"False" (what the model wrote, in Python's spelling) and
are counted in ``coerced_booleans``; rejecting them would drop real pairs for a serialisation accident.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ift_select.core.errors import DataError

LABELS = (0, 1, 2)


def _records(path: Path) -> list[tuple[str, Any]]:
    """(where, record) for each record of a JSON list or a JSONL file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (labelled pairs, PandaLM's format)") from None
    if text.lstrip().startswith("["):
        try:
            return [(f"{path}: record {n}", r) for n, r in enumerate(json.loads(text))]
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    out = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append((f"{path}:{line_no}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: not a JSON line ({exc.msg})") from exc
    return out


def _text(value: Any, where: str) -> tuple[str, bool]:
    if isinstance(value, bool):
        return str(value), True
    if not isinstance(value, str):
        raise DataError(f"{where}: expected a string, got {type(value).__name__}")
    return value, False


def _label(rec: dict[str, Any], where: str) -> int:
    if "label" in rec:
        if rec["label"] not in LABELS or isinstance(rec["label"], bool):
            raise DataError(f"{where}: label must be 0 (tie), 1 or 2, got {rec['label']!r}")
        return int(rec["label"])
    try:
        votes = [int(rec[f"annotator{k}"]) for k in (1, 2, 3)]
    except KeyError as exc:
        raise DataError(f"{where}: missing field {exc.args[0]} (or give one `label`)") from None
    except (TypeError, ValueError):
        raise DataError(f"{where}: annotator labels must be 0, 1 or 2") from None
    label, count = Counter(votes).most_common(1)[0]
    if count < 2 or label not in LABELS:
        raise DataError(f"{where}: annotators {votes} have no 2-of-3 majority among 0, 1, 2")
    return label


def load_pairs(path: str | Path, limit: int | None = None, sample: int | None = None,
               seed: int = 0) -> tuple[pd.DataFrame, int]:
    """The pairs (idx, instruction, input, response1, response2, label, extra fields) and the number of JSON
    booleans coerced to strings. ``limit``: the first N pairs (file order); ``sample``: a seeded random N
    pairs (kept in file order) instead."""
    path = Path(path)
    records = _records(path)
    if sample and sample < len(records):
        keep = sorted(np.random.default_rng(seed).choice(len(records), size=sample, replace=False))
        records = [records[i] for i in keep]
    rows, coerced = [], 0
    for n, (where, rec) in enumerate(records[:limit] if limit else records):
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
        where = f"{where} (idx {rec['idx']})" if "idx" in rec else where
        try:
            r1, c1 = _text(rec["response1"], f"{where} response1")
            r2, c2 = _text(rec["response2"], f"{where} response2")
            instruction, _ = _text(rec["instruction"], f"{where} instruction")
        except KeyError as exc:
            raise DataError(f"{where}: missing field {exc.args[0]}") from None
        extra = {k: v for k, v in rec.items() if k not in ("idx", "instruction", "input", "response1", "response2",
                                                           "label") and not k.startswith("annotator")}
        coerced += c1 + c2
        rows.append({"idx": str(rec.get("idx", n)), "instruction": instruction,
                     "input": str(rec.get("input") or ""), "response1": r1, "response2": r2,
                     "label": _label(rec, where), **extra})
    if not rows:
        raise DataError(f"{path}: no pairs")
    frame = pd.DataFrame(rows)
    dup = frame["idx"].duplicated()
    if dup.any():
        raise DataError(f"{path}: idx {frame.loc[dup, 'idx'].iloc[0]} appears twice")
    return frame, coerced


def as_generations(pairs: pd.DataFrame, test_set: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pairs as two "arms" (response1, response2) in the generation-frame schema."""
    base = pd.DataFrame({"test_set": test_set, "item_id": pairs["idx"].astype(str),
                         "instruction": pairs["instruction"], "input": pairs["input"]})
    return base.assign(output=pairs["response1"].to_numpy()), base.assign(output=pairs["response2"].to_numpy())
