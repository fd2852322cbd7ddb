"""How well a grader's numbers agree with labels, always beside the "longer output is better" baseline.

Two kinds of labelled file:
- pairs, CaR's ``src,pos,neg`` CSV (``src`` = "Instruction: ... [Input: ... ]", ``pos``/``neg`` = "Response: ..."):
  ``pairwise_accuracy`` = share of pairs whose better answer (``pos``) scores higher, a tie counting half;
- rows, JSONL with ``instruction``, ``input``, ``output`` and a 0/1 ``label`` (1 = good): ``auc``.

A row the grader could not score ranks below every scored row (as in selection, which never keeps it);
``unscored`` counts them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ift_select.core.errors import DataError
from ift_select.data.car_text import split_src, strip_response
from ift_select.data.common import row_id

GRADER_COLUMNS = ("score", "score_expected", "score_checked", "p_correct", "iqs")


def _row(instruction: str, input: str, output: str) -> dict[str, str]:  # noqa: A002
    return {"id": row_id(instruction, input, output), "instruction": instruction, "input": input, "output": output}


def read_pairs(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(rows to grade, pair index: an (n, 2) array of row positions, better first)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such pairs file")
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    missing = [c for c in ("src", "pos", "neg") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (a pairs file has src, pos, neg; found "
                        f"{', '.join(frame.columns)})")
    rows, index = [], []
    for src, pos, neg in zip(frame["src"], frame["pos"], frame["neg"]):
        instruction, inp, _ = split_src(src) or (src.strip(), "", None)
        index.append((len(rows), len(rows) + 1))
        rows += [_row(instruction, inp, strip_response(pos)), _row(instruction, inp, strip_response(neg))]
    if not rows:
        raise DataError(f"{path}: no pairs")
    return pd.DataFrame(rows), np.array(index)


def read_labelled(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(rows to grade, 0/1 labels) from JSONL rows with instruction, input, output and label."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such labelled file")
    rows, labels = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}: line {n}: not JSON ({exc})") from None
        if not isinstance(record, dict) or record.get("label") not in (0, 1) or not isinstance(record.get("instruction"), str):
            raise DataError(f"{path}: line {n}: needs a string instruction and a 0/1 label")
        rows.append(_row(record["instruction"], str(record.get("input") or ""), str(record.get("output") or "")))
        labels.append(int(record["label"]))
    if len(set(labels)) < 2:
        raise DataError(f"{path}: the labels must include both 0 and 1")
    return pd.DataFrame(rows), np.array(labels)


def ranked(values: pd.Series | np.ndarray) -> np.ndarray:
    """Scores with unscored (NaN) rows below every scored one."""
    v = np.asarray(values, dtype=float)
    floor = np.nanmin(v) - 1 if np.isfinite(v).any() else 0.0
    return np.where(np.isnan(v), floor, v)


def auc(values: pd.Series | np.ndarray, labels: np.ndarray) -> float | None:
    """P(a random good row scores above a random bad one), ties half; None with one class."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2:
        return None
    return round(float(roc_auc_score(labels, ranked(values))), 4)


def pairwise(values: pd.Series | np.ndarray, index: np.ndarray) -> float | None:
    v = ranked(values)
    if not len(index):
        return None
    better, worse = v[index[:, 0]], v[index[:, 1]]
    return round(float(((better > worse) + 0.5 * (better == worse)).mean()), 4)


def columns_of(scores: pd.DataFrame) -> list[str]:
    """The grader columns present: score, score_expected, score_checked, p_correct, iqs and each extra
    grader's score_<name>."""
    extra = [c for c in scores.columns if c.startswith("score_") and c not in GRADER_COLUMNS and
             pd.api.types.is_numeric_dtype(scores[c])]
    return [c for c in GRADER_COLUMNS if c in scores.columns] + extra


def pair_figures(scores: pd.DataFrame, rows: pd.DataFrame, index: np.ndarray) -> dict[str, Any]:
    """Pairwise accuracy of every grader column, overall and where the better answer is not the longer one."""
    length = rows["output"].str.len().to_numpy()
    not_longer = index[length[index[:, 0]] <= length[index[:, 1]]]
    figures: dict[str, Any] = {"n": len(index), "n_not_longer": len(not_longer),
                               "length_baseline": pairwise(length, index),
                               "unscored": int(scores[columns_of(scores)[0]].isna().sum()), "columns": {}}
    for column in columns_of(scores):
        figures["columns"][column] = {"pairwise_accuracy": pairwise(scores[column], index),
                                      "pairwise_accuracy_not_longer": pairwise(scores[column], not_longer)}
    return figures


def label_figures(scores: pd.DataFrame, rows: pd.DataFrame, labels: np.ndarray) -> dict[str, Any]:
    return {"n": len(labels), "positives": int(labels.sum()), "length_baseline": auc(rows["output"].str.len(), labels),
            "unscored": int(scores[columns_of(scores)[0]].isna().sum()),
            "columns": {c: {"auc": auc(scores[c], labels)} for c in columns_of(scores)}}


def measure_file(path: str | Path, grade: Callable[[pd.DataFrame], pd.DataFrame],
                 max_rows: int | None = None) -> dict[str, Any]:
    """Grade a labelled file (pairs: .csv; rows with a 0/1 label: .jsonl/.json) with ``grade`` and measure
    every grader column; ``metric`` names the figure (pairwise_accuracy or auc)."""
    labelled = Path(path).suffix.lower() in (".jsonl", ".json")
    rows, index = read_labelled(path) if labelled else read_pairs(path)
    if max_rows is not None:
        index = index[:max_rows]
        rows = rows.iloc[: max_rows if labelled else 2 * max_rows].reset_index(drop=True)
    scores = grade(rows)
    figures = label_figures(scores, rows, index) if labelled else pair_figures(scores, rows, index)
    return {"file": str(path), "metric": "auc" if labelled else "pairwise_accuracy", **figures}
